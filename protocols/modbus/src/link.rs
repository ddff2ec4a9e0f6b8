//! Where a Modbus machine is reached: a TCP address, RTU frames over TCP, or a serial line.
//! Machines with the same link are on one bus and share one connection.

use crate::rtu::{LineTiming, Parity};
use std::fmt;

/// A serial line's settings; data bits are always 8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The device, e.g. `/dev/ttyUSB0`.
    pub port: String,
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
}

impl SerialLine {
    /// What a character costs on this line.
    pub fn timing(&self) -> LineTiming {
        LineTiming::new(self.baud, self.parity, self.stop_bits)
    }
}

/// How a machine is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Link {
    /// `modbus-tcp`: MBAP frames over TCP, `host:port`.
    Tcp(String),
    /// `modbus-rtu-tcp`: RTU frames (with CRC) over TCP, as serial device servers pass them on.
    RtuTcp(String),
    /// `modbus-rtu`: RTU frames on a serial line.
    Rtu(SerialLine),
}

impl Link {
    /// The configuration word of the protocol.
    pub fn protocol(&self) -> &'static str {
        match self {
            Link::Tcp(_) => "modbus-tcp",
            Link::RtuTcp(_) => "modbus-rtu-tcp",
            Link::Rtu(_) => "modbus-rtu",
        }
    }

    /// What makes two machines share a bus: the same address, or the same serial device.
    /// (A TCP address is one bus whatever the framing: a device server has one port.)
    pub fn bus(&self) -> &str {
        match self {
            Link::Tcp(a) | Link::RtuTcp(a) => a,
            Link::Rtu(line) => &line.port,
        }
    }

    /// Whether the frames are RTU (unit and CRC, no transaction id).
    pub fn is_rtu(&self) -> bool {
        !matches!(self, Link::Tcp(_))
    }

    /// The wire timing of a serial line; `None` over TCP.
    pub fn timing(&self) -> Option<LineTiming> {
        match self {
            Link::Rtu(line) => Some(line.timing()),
            _ => None,
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Tcp(a) => write!(f, "modbus-tcp://{a}"),
            Link::RtuTcp(a) => write!(f, "modbus-rtu-tcp://{a}"),
            Link::Rtu(l) => write!(
                f,
                "modbus-rtu://{}?baud={}&parity={}&stop_bits={}",
                l.port,
                l.baud,
                l.parity.as_str(),
                l.stop_bits
            ),
        }
    }
}
