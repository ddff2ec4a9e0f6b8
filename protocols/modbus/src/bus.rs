//! The task of one bus: the machines on one connection, polled one request at a time.
//!
//! One task per bus, so one bus's trouble never delays another's polls, and machines on the
//! same bus never race each other for the line. The task owns the connection: it opens it when
//! a poll is due, runs the machine the [`Schedule`] names, and turns what went wrong into that
//! machine's bad samples and `offline` status. A unit that does not answer leaves the
//! connection to its neighbours (RTU), or has it reopened (TCP, where a late reply could be
//! taken for a later answer); a connection that cannot be opened takes every machine of the bus
//! offline and is retried with backoff and jitter, forever.

use crate::connection::Connection;
use crate::driver::{ModbusMachine, plan_for};
use crate::link::Link;
use crate::poller::Poller;
use crate::schedule::Schedule;
use shopfloor_core::StatusReporter;
use shopfloor_core::backoff::Backoff;
use shopfloor_core::phase;
use shopfloor_core::ring::Producer;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The machines on one connection.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The link they share (the first machine's: the others have the same bus key).
    pub link: Link,
    /// The machines, each with its ring lane given beside it to [`run`].
    pub machines: Vec<ModbusMachine>,
}

/// Groups `machines` into buses by [`Link::bus`], in the order each bus first appears.
pub fn buses(machines: Vec<ModbusMachine>) -> Vec<Bus> {
    let mut out: Vec<Bus> = Vec::new();
    for m in machines {
        match out.iter_mut().find(|b| b.link.bus() == m.link.bus()) {
            Some(b) => b.machines.push(m),
            None => out.push(Bus {
                link: m.link.clone(),
                machines: vec![m],
            }),
        }
    }
    out
}

/// How much of a serial line one round of its machines' polls takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireLoad {
    /// Wire time of one poll of every machine: requests, replies and the silences.
    pub round: Duration,
    /// Wire time the polls need per second at their intervals, as a share of the line (1.0 is
    /// a line busy all the time).
    pub share: f64,
}

/// The wire load of `bus`, when it is a serial line (over TCP the device server's serial side
/// is not known here).
pub fn wire_load(bus: &Bus) -> Option<WireLoad> {
    let timing = bus.link.timing()?;
    let mut round = Duration::ZERO;
    let mut share = 0.0;
    for m in &bus.machines {
        let poll: Duration = plan_for(m)
            .iter()
            .map(|r| timing.exchange(r.area, r.count))
            .sum();
        round += poll;
        share += poll.as_secs_f64() / m.poll_interval.as_secs_f64().max(1e-9);
    }
    Some(WireLoad { round, share })
}

/// Runs `bus` until `shutdown` is cancelled; `producers[i]` is the lane of its machine `i`.
/// Never returns early: a bus that is down, absent at start-up or answering garbage is retried
/// forever.
pub async fn run(
    bus: Bus,
    producers: Vec<Producer>,
    status: Arc<dyn StatusReporter>,
    shutdown: CancellationToken,
) {
    let mut pollers: Vec<Poller> = bus
        .machines
        .into_iter()
        .zip(producers)
        .map(|(m, p)| Poller::new(m, p, Arc::clone(&status)))
        .collect();
    let mut schedule = schedule_of(&pollers);
    for p in &mut pollers {
        p.emit.connecting();
    }
    let fastest = pollers
        .iter()
        .map(|p| p.machine.poll_interval)
        .min()
        .unwrap_or(Duration::from_secs(1));
    let mut reconnect = Backoff::new(
        fastest.clamp(Duration::from_millis(100), Duration::from_secs(1)),
        Duration::from_secs(30),
    );
    let mut conn: Option<Connection> = None;
    let mut parity_told = false;
    while let Some((i, due)) = schedule.next() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let p = &mut pollers[i];
        let c = match &mut conn {
            Some(c) => c,
            None => {
                let limit = p.machine.timeout;
                let opened = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    c = Connection::open(&bus.link, p.machine.unit_id, limit, &mut parity_told) => c,
                };
                match opened {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        debug!(bus = %bus.link, error = %e, "cannot open the bus");
                        for p in &mut pollers {
                            p.emit.offline(e.to_string());
                        }
                        schedule.hold_all(Instant::now() + reconnect.next_delay());
                        continue;
                    }
                }
            }
        };
        let started = Instant::now();
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = p.poll(c) => r,
        };
        p.emit.poll_done(started.elapsed());
        let now = Instant::now();
        match polled {
            Ok(()) => {
                reconnect.reset();
                schedule.answered(i, now);
            }
            Err(e) => {
                if !c.survives(&e) {
                    conn = None;
                }
                debug!(machine = %p.machine.name, error = %e, fails = schedule.fails(i) + 1, "no answer");
                p.emit.offline(e.to_string());
                schedule.failed(i, now);
            }
        }
    }
}

/// Each machine's first poll spread over its interval by its catalog index, so that machines
/// with the same interval do not all poll at once.
fn schedule_of(pollers: &[Poller]) -> Schedule {
    let intervals: Vec<Duration> = pollers.iter().map(|p| p.machine.poll_interval).collect();
    let offsets: Vec<Duration> = pollers
        .iter()
        .map(|p| phase::offset(p.machine.id.index(), p.machine.poll_interval))
        .collect();
    Schedule::new(Instant::now(), &intervals, &offsets)
}
