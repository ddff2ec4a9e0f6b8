//! An HTTP gate in front of a real server: it passes connections through, or answers every
//! request itself with a status the test chose (a store refusing a token, a bucket not made
//! yet), closing the connection after each answer so that every request meets the gate anew.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the gate does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Answer(u16, &'static str),
}

/// See the module doc.
#[derive(Debug)]
pub struct HttpGate {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    answered: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl HttpGate {
    /// A gate on a free port of 127.0.0.1 before `target`, answering `status` with `body`.
    pub async fn refusing(target: SocketAddr, status: u16, body: &'static str) -> HttpGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Answer(status, body)));
        let answered = Arc::new(AtomicU64::new(0));
        let (m, a) = (Arc::clone(&mode), Arc::clone(&answered));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = *m.lock().unwrap();
                let a = Arc::clone(&a);
                tokio::spawn(async move {
                    match now {
                        Mode::Pass => pass(client, target).await,
                        Mode::Answer(status, body) => {
                            if answer(client, status, body).await {
                                a.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        HttpGate {
            addr,
            mode,
            answered,
            task,
        }
    }

    /// Answers new connections with `status` and `body` from now on.
    pub fn refuse(&self, status: u16, body: &'static str) {
        *self.mode.lock().unwrap() = Mode::Answer(status, body);
    }

    /// Passes new connections through from now on.
    pub fn pass(&self) {
        *self.mode.lock().unwrap() = Mode::Pass;
    }

    /// Requests the gate has answered itself so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// Waits until the gate has answered `n` requests in all; panics after `within`.
    pub async fn wait_answered(&self, n: u64, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.answered() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gate answered {} of {n} requests within {within:?}",
                self.answered()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pass(mut client: TcpStream, target: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// Reads one request (headers and a `Content-Length` body) and answers it; true when answered.
async fn answer(mut client: TcpStream, status: u16, body: &str) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(reply.as_bytes()).await.is_ok() && client.shutdown().await.is_ok()
}
