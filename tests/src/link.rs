//! A TCP link between the gateway and a real server that a test can break the ways a network or a
//! device breaks: cut (connections closed, new ones refused), reset (RST on every open
//! connection), half-open (open connections go silent without FIN or RST, new ones work), a
//! power cycle (everything silent, then RST for the old connections when it is back), a crawl
//! (answers at a byte a second) and a stall (nothing read, so the sender's writes hang). The server, and whoever else is connected to it, stays up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How every connection of the link behaves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow both ways.
    Up,
    /// Open connections are closed, new ones closed at once.
    Cut,
    /// No byte flows on any connection, old or new (a device that is off behind a switch).
    Silent,
    /// Bytes towards the client flow at one a second.
    Crawl,
    /// Nothing is read from either side (a peer that stopped reading): the sender's buffers
    /// fill and its writes hang.
    Stalled,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Connections numbered below this stay silent for good (a half-open connection).
    silent_below: u64,
    /// Connections numbered below this are reset.
    reset_below: u64,
    /// The number the next connection gets.
    next: u64,
}

/// Forwards connections on `addr` to a target while up; see the module doc for its faults.
#[derive(Debug)]
pub struct Link {
    pub addr: SocketAddr,
    state: Arc<watch::Sender<State>>,
    task: JoinHandle<()>,
}

impl Link {
    /// A link on a free port of 127.0.0.1 to `target`, up.
    pub async fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(watch::Sender::new(State {
            mode: Mode::Up,
            silent_below: 0,
            reset_below: 0,
            next: 0,
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut id = 0;
                shared.send_modify(|s| {
                    id = s.next;
                    s.next += 1;
                });
                if shared.borrow().mode == Mode::Cut {
                    drop(client);
                    continue;
                }
                let watch = shared.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    forward(id, client, server, watch).await;
                });
            }
        });
        Link { addr, state, task }
    }

    /// Closes every connection and refuses new ones until [`Link::restore`].
    pub fn cut(&self) {
        self.state.send_modify(|s| s.mode = Mode::Cut);
    }

    /// Carries bytes again, on new connections and on open ones that are not half-open or reset.
    pub fn restore(&self) {
        self.state.send_modify(|s| s.mode = Mode::Up);
    }

    /// Resets every open connection (RST); new ones work.
    pub fn reset(&self) {
        self.state.send_modify(|s| s.reset_below = s.next);
    }

    /// Every open connection goes silent for good, with neither FIN nor RST; new ones work.
    pub fn half_open(&self) {
        self.state.send_modify(|s| s.silent_below = s.next);
    }

    /// A device switched off: no byte flows on any connection, and a new one is accepted but
    /// never answered, until [`Link::power_on`].
    pub fn power_off(&self) {
        self.state.send_modify(|s| s.mode = Mode::Silent);
    }

    /// The device back from a power cycle: it resets the connections it had before (it no
    /// longer knows them) and serves new ones.
    pub fn power_on(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Up;
            s.reset_below = s.next;
        });
    }

    /// Stops reading on every connection, open and new, until [`Link::restore`], which carries
    /// on where it stopped.
    pub fn stall(&self) {
        self.state.send_modify(|s| s.mode = Mode::Stalled);
    }

    /// Answers crawl at a byte a second, on open and new connections, until [`Link::restore`].
    pub fn crawl(&self) {
        self.state.send_modify(|s| s.mode = Mode::Crawl);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Step {
    Carry(Mode),
    Close,
    Reset,
}

fn step(id: u64, s: &State) -> Step {
    if id < s.reset_below {
        Step::Reset
    } else if s.mode == Mode::Cut {
        Step::Close
    } else if id < s.silent_below {
        Step::Carry(Mode::Silent)
    } else {
        Step::Carry(s.mode)
    }
}

/// Carries one connection's bytes as the link's state says, until either side closes or the
/// state ends the connection.
async fn forward(
    id: u64,
    mut client: TcpStream,
    mut server: TcpStream,
    mut watch: watch::Receiver<State>,
) {
    let mut up = [0u8; 4096];
    let mut down = [0u8; 4096];
    loop {
        let mode = match step(id, &watch.borrow_and_update()) {
            Step::Carry(mode) => mode,
            Step::Close => return,
            Step::Reset => {
                // Linger 0: the close sends RST instead of FIN.
                let _ = client.set_zero_linger();
                return;
            }
        };
        let reading = mode != Mode::Stalled;
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            n = client.read(&mut up), if reading => {
                let Ok(n @ 1..) = n else { return };
                // Silent: swallowed, as by a peer that is gone.
                if mode != Mode::Silent && server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = server.read(&mut down), if reading => {
                let Ok(n @ 1..) = n else { return };
                match mode {
                    Mode::Silent => {}
                    Mode::Crawl => {
                        for b in &down[..n] {
                            if client.write_all(std::slice::from_ref(b)).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    _ => {
                        if client.write_all(&down[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}
