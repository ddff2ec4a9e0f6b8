//! A Modbus machine's settings, what can go wrong reading it, and one Modbus TCP read.
//!
//! tokio-modbus has no timeout of its own: every request here runs under the machine's
//! `timeout`. A device exception (illegal address and the like) is the device answering: the
//! tags of that request go bad, the connection stays. A reply of the wrong length, for another
//! transaction or otherwise garbled is an error, never data.

use crate::link::Link;
use crate::plan::{PlanLimits, ReadRequest, plan};
use crate::register::{Area, TagSpec};
use shopfloor_core::MachineId;
use shopfloor_core::emit::Publish;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

/// Everything the driver needs to know about one machine.
#[derive(Clone, Debug)]
pub struct ModbusMachine {
    /// The machine's id in the catalog.
    pub id: MachineId,
    /// The configured id, for logs.
    pub name: String,
    /// Where it is reached; a TCP host is resolved on every connect, so a changed DNS entry
    /// is followed.
    pub link: Link,
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
    /// An RTU reply with a wrong CRC, from another unit, for another function or cut short:
    /// never data; the line stays usable.
    #[error("{what}: {message}")]
    Frame {
        /// The request.
        what: String,
        /// The reason.
        message: String,
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

/// A request as errors name it.
pub(crate) fn describe(r: &ReadRequest) -> String {
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
    let stream = tcp_stream(address, limit).await?;
    Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(unit)))
}

/// A TCP connection to `address` (resolved now, every address it has tried in turn) under
/// `limit`, with Nagle off: a request is one small write.
pub async fn tcp_stream(address: &str, limit: Duration) -> Result<TcpStream, ReadError> {
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
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// The read plan of a machine, as `check --plan` prints it.
pub fn plan_for(machine: &ModbusMachine) -> Vec<ReadRequest> {
    plan(&machine.tags, machine.limits)
}
