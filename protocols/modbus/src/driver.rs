//! The polling task of one Modbus TCP machine.
//!
//! One task per machine, so one machine's trouble never delays another's polls. The task owns
//! its connection: it connects, reads the planned requests every `poll_interval`, each under the
//! machine's `timeout` (tokio-modbus has no timeout of its own), and turns the replies into
//! samples. When the machine stops answering it publishes each tag once with bad quality,
//! reports the machine offline, drops the connection (a late reply must never be taken for the
//! answer to a later request) and reconnects with exponential backoff and jitter, forever.
//!
//! A device exception (illegal address and the like) is the device answering: the tags of that
//! request go bad, the connection stays. A reply of the wrong length, for another transaction
//! or otherwise garbled is an error, never data.

use crate::decode::{decode_bit, decode_registers};
use crate::plan::{PlanLimits, ReadRequest, plan};
use crate::register::{Area, TagSpec};
use shopfloor_core::backoff::Backoff;
use shopfloor_core::emit::Publish;
use shopfloor_core::phase;
use shopfloor_core::ring::Producer;
use shopfloor_core::{Emitter, MachineId, Quality, StatusReporter};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Everything the driver needs to know about one machine.
#[derive(Clone, Debug)]
pub struct ModbusMachine {
    /// The machine's id in the catalog.
    pub id: MachineId,
    /// The configured id, for logs.
    pub name: String,
    /// `host:port`, resolved on every connect so a changed DNS entry is followed.
    pub address: String,
    /// Modbus unit identifier.
    pub unit_id: u8,
    /// Time between the starts of two poll cycles.
    pub poll_interval: Duration,
    /// Limit on connecting and on every request.
    pub timeout: Duration,
    /// The tags; a tag's index here is its [`TagId`].
    pub tags: Vec<TagSpec>,
    /// Planner limits.
    pub limits: PlanLimits,
    /// Every reading, or report by exception.
    pub publish: Publish,
}

/// Why a request or a connection failed.
#[derive(Debug, Error)]
pub enum ReadError {
    /// No TCP connection could be made.
    #[error("connect {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// The reason.
        source: std::io::Error,
    },
    /// Connecting or a request took longer than the machine's timeout.
    #[error("{what}: no answer within {limit:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The timeout.
        limit: Duration,
    },
    /// The transport or the framing failed (connection reset, wrong transaction id, ...).
    #[error("{what}: {message}")]
    Transport {
        /// The request.
        what: String,
        /// The reason.
        message: String,
    },
    /// The reply had another number of registers or bits than asked for.
    #[error("{what}: reply has {got} values, expected {expected}")]
    WrongLength {
        /// The request.
        what: String,
        /// Asked for.
        expected: usize,
        /// Received.
        got: usize,
    },
    /// The device answered with a Modbus exception.
    #[error("{what}: device exception: {code}")]
    Exception {
        /// The request.
        what: String,
        /// The exception code.
        code: ExceptionCode,
    },
}

impl ReadError {
    /// True when the connection can no longer be trusted and must be dropped.
    pub fn needs_reconnect(&self) -> bool {
        !matches!(self, ReadError::Exception { .. })
    }
}

/// A checked reply: exactly the registers asked for, or at least the bits asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Holding or input registers.
    Registers(Vec<u16>),
    /// Coils or discrete inputs (padded to whole bytes).
    Bits(Vec<bool>),
}

fn describe(r: &ReadRequest) -> String {
    let end = u32::from(r.start) + u32::from(r.count) - 1;
    format!("read {} {}..={}", r.area, r.start, end)
}

/// Reads one request under `limit`; a reply of the wrong length or for another transaction is
/// an error, never data.
pub async fn read(ctx: &mut Context, r: &ReadRequest, limit: Duration) -> Result<Reply, ReadError> {
    let what = || describe(r);
    // `Client::call`, not the `Reader` helpers: those `debug_assert` the reply's length, so a
    // short reply from a device would panic a debug build. We check the length below instead.
    let request = match r.area {
        Area::Holding => Request::ReadHoldingRegisters(r.start, r.count),
        Area::Input => Request::ReadInputRegisters(r.start, r.count),
        Area::Coil => Request::ReadCoils(r.start, r.count),
        Area::Discrete => Request::ReadDiscreteInputs(r.start, r.count),
    };
    let call = async {
        ctx.call(request).await.map(|x| {
            x.map(|response| match response {
                Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v) => {
                    Reply::Registers(v)
                }
                Response::ReadCoils(v) | Response::ReadDiscreteInputs(v) => Reply::Bits(v),
                // call() rejects a reply of another function; treat anything else as garbage.
                _ => Reply::Registers(Vec::new()),
            })
        })
    };
    let reply = match timeout(limit, call).await {
        Err(_) => {
            return Err(ReadError::Timeout {
                what: what(),
                limit,
            });
        }
        Ok(Err(e)) => {
            return Err(ReadError::Transport {
                what: what(),
                message: e.to_string(),
            });
        }
        Ok(Ok(Err(code))) => return Err(ReadError::Exception { what: what(), code }),
        Ok(Ok(Ok(reply))) => reply,
    };
    let expected = usize::from(r.count);
    match reply {
        Reply::Registers(v) if v.len() != expected => Err(ReadError::WrongLength {
            what: what(),
            expected,
            got: v.len(),
        }),
        // Bits arrive packed in whole bytes: more than asked is padding, fewer is an error.
        Reply::Bits(v) if v.len() < expected || v.len() >= expected + 8 => {
            Err(ReadError::WrongLength {
                what: what(),
                expected,
                got: v.len(),
            })
        }
        ok => Ok(ok),
    }
}

/// Connects to `address` (resolved now) under `limit`, for unit `unit`.
pub async fn connect(address: &str, unit: u8, limit: Duration) -> Result<Context, ReadError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address found");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match timeout(limit, attempt).await {
        Err(_) => Err(ReadError::Timeout {
            what: format!("connect {address}"),
            limit,
        }),
        Ok(Err(source)) => Err(ReadError::Connect {
            address: address.to_owned(),
            source,
        }),
        Ok(Ok(stream)) => Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(unit))),
    }
}

/// The running state of one machine's driver.
struct Poller {
    machine: ModbusMachine,
    plan: Vec<ReadRequest>,
    emit: Emitter,
    /// Refused requests were logged since the machine last answered every request.
    warned_refusal: bool,
}

impl Poller {
    /// One poll cycle. `Err` means the connection must be dropped.
    async fn poll(&mut self, ctx: &mut Context) -> Result<(), ReadError> {
        let limit = self.machine.timeout;
        let mut replies = Vec::with_capacity(self.plan.len());
        for i in 0..self.plan.len() {
            match read(ctx, &self.plan[i], limit).await {
                Err(e) if e.needs_reconnect() => return Err(e),
                reply => replies.push(reply),
            }
        }
        let ts = self.emit.now();
        let mut first_exception = None;
        let mut answered = 0;
        for (i, reply) in replies.into_iter().enumerate() {
            let slots = std::mem::take(&mut self.plan[i].slots);
            match reply {
                Ok(Reply::Registers(regs)) => {
                    answered += 1;
                    for s in &slots {
                        let range = usize::from(s.offset)..usize::from(s.offset + s.width);
                        match decode_registers(&self.machine.tags[s.tag], &regs[range]) {
                            Ok(v) => self.emit.reading(s.tag, ts, v, Quality::Good),
                            Err(_) => self.emit.bad_once(s.tag, ts),
                        }
                    }
                }
                Ok(Reply::Bits(bits)) => {
                    answered += 1;
                    for s in &slots {
                        let bit = decode_bit(bits[usize::from(s.offset)]);
                        self.emit.reading(s.tag, ts, bit, Quality::Good);
                    }
                }
                Err(e) => {
                    for s in &slots {
                        self.emit.bad_once(s.tag, ts);
                    }
                    if first_exception.is_none() {
                        first_exception = Some(e);
                    }
                }
            }
            self.plan[i].slots = slots;
        }
        match first_exception {
            Some(e) if answered == 0 => self.emit.offline(e.to_string()),
            Some(e) => {
                // Partly answered: online, and the refused requests are worth a log line.
                if !self.warned_refusal {
                    warn!(machine = %self.machine.name, error = %e, "some tags refused");
                    self.warned_refusal = true;
                }
                self.emit.online();
            }
            None => {
                self.warned_refusal = false;
                self.emit.online();
            }
        }
        self.emit.flush();
        Ok(())
    }
}

/// The read plan of a machine, as `check --plan` prints it.
pub fn plan_for(machine: &ModbusMachine) -> Vec<ReadRequest> {
    plan(&machine.tags, machine.limits)
}

/// Runs one machine until `shutdown` is cancelled. Never returns early: a machine that is down,
/// absent at start-up or answering garbage is retried forever with backoff.
pub async fn run(
    machine: ModbusMachine,
    producer: Producer,
    status: Arc<dyn StatusReporter>,
    shutdown: CancellationToken,
) {
    let plan = plan_for(&machine);
    let emit = Emitter::new(
        machine.id,
        &machine.name,
        machine.tags.len(),
        producer,
        status,
    )
    .with_publish(machine.publish.clone());
    let mut p = Poller {
        machine,
        plan,
        emit,
        warned_refusal: false,
    };
    p.emit.connecting();
    let mut backoff = Backoff::new(
        p.machine
            .poll_interval
            .clamp(Duration::from_millis(100), Duration::from_secs(1)),
        Duration::from_secs(30),
    );
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = connect(&p.machine.address, p.machine.unit_id, p.machine.timeout) => c,
        };
        let error = match connected {
            Err(e) => e,
            Ok(mut ctx) => {
                debug!(machine = %p.machine.name, "connected");
                // Machines with the same interval poll at spread-out moments, not in one burst.
                let every = p.machine.poll_interval;
                let first =
                    tokio::time::Instant::now() + phase::offset(p.machine.id.index(), every);
                let mut ticker = tokio::time::interval_at(first, every);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = ticker.tick() => {}
                    }
                    let started = tokio::time::Instant::now();
                    let polled = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = p.poll(&mut ctx) => r,
                    };
                    p.emit.poll_done(started.elapsed());
                    match polled {
                        Ok(()) => backoff.reset(),
                        Err(e) => break e,
                    }
                }
            }
        };
        p.emit.offline(error.to_string());
        let delay = backoff.next_delay();
        debug!(machine = %p.machine.name, ?delay, "reconnecting after backoff");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
