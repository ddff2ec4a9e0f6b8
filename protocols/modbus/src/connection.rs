//! A bus's one connection, whatever its link: MBAP over TCP through tokio-modbus, or RTU frames
//! over TCP or a serial line through [`RtuLine`].

use crate::driver::{self, ReadError, Reply};
use crate::link::Link;
use crate::plan::ReadRequest;
use crate::rtu_line::RtuLine;
use crate::serial;
use std::time::Duration;
use tokio_modbus::client::Context;
use tokio_modbus::slave::{Slave, SlaveContext};
use tracing::warn;

/// An open bus connection.
pub enum Connection {
    /// Modbus TCP.
    Tcp(Context),
    /// RTU over TCP or a serial line.
    Rtu(RtuLine),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Tcp(_) => f.write_str("Connection::Tcp"),
            Connection::Rtu(line) => line.fmt(f),
        }
    }
}

impl Connection {
    /// Opens `link` under `limit`. Connects as unit `unit` (MBAP carries the unit per request,
    /// so it is set again before each). A serial line that refuses its parity is said once,
    /// while `parity_told` is false.
    pub async fn open(
        link: &Link,
        unit: u8,
        limit: Duration,
        parity_told: &mut bool,
    ) -> Result<Connection, ReadError> {
        match link {
            Link::Tcp(address) => Ok(Connection::Tcp(
                driver::connect(address, unit, limit).await?,
            )),
            Link::RtuTcp(address) => {
                let stream = driver::tcp_stream(address, limit).await?;
                Ok(Connection::Rtu(RtuLine::new(Box::new(stream), None)))
            }
            Link::Rtu(line) => {
                let opened = serial::open(line).map_err(|source| ReadError::Connect {
                    address: line.port.clone(),
                    source,
                })?;
                if let Some(used) = opened.fallback.filter(|_| !*parity_told) {
                    *parity_told = true;
                    warn!(
                        port = %line.port,
                        configured = line.parity.as_str(),
                        used = used.as_str(),
                        event = "serial_parity_refused",
                        "the serial line refused its parity (a pseudo-terminal has none); running without"
                    );
                }
                Ok(Connection::Rtu(RtuLine::new(
                    Box::new(opened.stream),
                    Some(line.timing()),
                )))
            }
        }
    }

    /// Reads `r` from `unit` under `limit`.
    pub async fn read(
        &mut self,
        unit: u8,
        r: &ReadRequest,
        limit: Duration,
    ) -> Result<Reply, ReadError> {
        match self {
            Connection::Tcp(ctx) => {
                ctx.set_slave(Slave(unit));
                driver::read(ctx, r, limit).await
            }
            Connection::Rtu(line) => line.read(unit, r, limit).await,
        }
    }

    /// Whether the connection can still be trusted after `e`: over RTU a unit that does not
    /// answer or answers garbage leaves the line usable (it is drained before the next
    /// request); over TCP only a device exception does, since a late reply could be taken for
    /// the answer to a later request.
    pub fn survives(&self, e: &ReadError) -> bool {
        match self {
            Connection::Tcp(_) => !e.needs_reconnect(),
            Connection::Rtu(_) => !matches!(e, ReadError::Transport { .. }),
        }
    }
}
