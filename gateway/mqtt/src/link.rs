//! A client's link to the broker over time: connecting, reconnecting with backoff, keep-alive,
//! and one write buffer that goes out whole.
//!
//! [`Link::next`] is cancel-safe (it is one branch of the sink's `select!`): the connect in
//! progress and the bytes read are kept in the link, and it never writes. Writes happen only in
//! [`Link::flush`], which the sink awaits outside `select!`, so a packet is never cut in half.

use crate::connection::{Connection, ConnectionError, Target};
use crate::wire::{self, Incoming};
use shopfloor_core::backoff::Backoff;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep_until};
use tracing::{debug, info, warn};

/// The keep-alive interval asked of the broker by default (`[mqtt] keep_alive`); a PINGREQ
/// goes out this often.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where a link reports whether it can deliver (a sink's counters and `/health`).
pub trait LinkHealth: Send + Sync {
    /// A connection was accepted.
    fn connected(&self);
    /// A connection was lost or refused; `refused` when the broker refuses our credentials.
    fn lost(&self, reason: &str, refused: bool);
}

type Connecting = Pin<Box<dyn Future<Output = Result<Connection, ConnectionError>> + Send>>;

/// What happened on the link.
#[derive(Debug)]
pub enum LinkEvent {
    /// A connection was accepted.
    Connected,
    /// A packet from the broker.
    Packet(Incoming),
    /// The connection was lost or refused (already reported).
    Lost,
    /// A PINGREQ was queued in the write buffer.
    PingDue,
}

/// See the module doc.
pub struct Link {
    target: Arc<Target>,
    url: String,
    health: Arc<dyn LinkHealth>,
    conn: Option<Connection>,
    connecting: Option<Connecting>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    last_error: Option<String>,
    keep_alive: Interval,
    keep_alive_every: Duration,
    awaiting_pong: bool,
    out: Vec<u8>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `target` (shown as `url` in logs), connecting from the first [`Link::next`],
    /// pinging every `keep_alive` (as its CONNECT told the broker).
    pub fn new(
        target: Arc<Target>,
        url: String,
        health: Arc<dyn LinkHealth>,
        keep_alive_every: Duration,
    ) -> Link {
        let mut keep_alive = tokio::time::interval(keep_alive_every);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Link {
            target,
            url,
            health,
            conn: None,
            connecting: None,
            retry_at: Some(Instant::now()),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
            last_error: None,
            keep_alive,
            keep_alive_every,
            awaiting_pong: false,
            out: Vec::with_capacity(64 * 1024),
        }
    }

    /// True while a connection is accepted.
    pub fn is_up(&self) -> bool {
        self.conn.is_some()
    }

    /// The write buffer: packets appended here go out with the next [`Link::flush`].
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes the buffer whole and empties it; false when the connection was lost doing so
    /// (or there is none: the buffer is emptied either way, the outbox resends).
    pub async fn flush(&mut self) -> bool {
        let Some(conn) = &mut self.conn else {
            self.out.clear();
            return false;
        };
        if self.out.is_empty() {
            return true;
        }
        let result = conn.write(&self.out).await;
        self.out.clear();
        match result {
            Ok(()) => true,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// The next packet already read, if one is whole (after a [`LinkEvent::Packet`]).
    pub fn buffered(&mut self) -> Option<Incoming> {
        let conn = self.conn.as_mut()?;
        match conn.buffered() {
            Ok(p) => {
                if p == Some(Incoming::PingResp) {
                    self.awaiting_pong = false;
                }
                p
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Waits for the next event. Cancel-safe.
    pub async fn next(&mut self) -> LinkEvent {
        loop {
            if let Some(conn) = &mut self.conn {
                tokio::select! {
                    read = conn.read() => match read {
                        Ok(packet) => {
                            if packet == Incoming::PingResp {
                                self.awaiting_pong = false;
                            }
                            return LinkEvent::Packet(packet);
                        }
                        Err(e) => {
                            self.fail(e);
                            return LinkEvent::Lost;
                        }
                    },
                    _ = self.keep_alive.tick() => {
                        if self.awaiting_pong {
                            self.fail(ConnectionError::Timeout(self.keep_alive_every, "PINGRESP"));
                            return LinkEvent::Lost;
                        }
                        self.awaiting_pong = true;
                        wire::pingreq(&mut self.out);
                        return LinkEvent::PingDue;
                    }
                }
            } else if let Some(connecting) = &mut self.connecting {
                let result = connecting.await;
                self.connecting = None;
                match result {
                    Ok(conn) => {
                        info!(broker = %self.url, "MQTT connected");
                        self.health.connected();
                        self.conn = Some(conn);
                        self.last_error = None;
                        self.backoff.reset();
                        self.keep_alive.reset();
                        self.awaiting_pong = false;
                        self.out.clear();
                        return LinkEvent::Connected;
                    }
                    Err(e) => {
                        self.fail(e);
                        return LinkEvent::Lost;
                    }
                }
            } else if let Some(at) = self.retry_at {
                sleep_until(at).await;
                self.retry_at = None;
                self.connecting = Some(Box::pin(Connection::open(Arc::clone(&self.target))));
            } else {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Drops the connection, reports why, and schedules the next attempt.
    fn fail(&mut self, e: ConnectionError) {
        let was_up = self.conn.take().is_some();
        let reason = e.to_string();
        // A new reason is worth a warning; the same one again is not.
        if was_up || self.last_error.as_deref() != Some(reason.as_str()) {
            warn!(event = "mqtt_unreachable", broker = %self.url, error = %reason, "MQTT not connected; retrying");
        } else {
            debug!(broker = %self.url, error = %reason, "MQTT connect failed again");
        }
        let refused = matches!(e, ConnectionError::Refused(4 | 5));
        self.health.lost(&reason, refused);
        self.last_error = Some(reason);
        self.out.clear();
        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
    }

    /// Sends DISCONNECT after what is buffered and closes the connection.
    pub async fn close(mut self) {
        wire::disconnect(&mut self.out);
        if self.flush().await
            && let Some(conn) = self.conn.take()
        {
            conn.shutdown().await;
        }
    }
}
