//! Opening a serial line for RTU: 8 data bits, the configured parity and stop bits.
//!
//! A pseudo-terminal (what `socat` makes, and what many adapters' test setups use) has no
//! parity: the kernel may refuse `PARENB` with EINVAL. Such a line is opened without parity
//! rather than not at all; the caller says so once in the log.

use crate::link::SerialLine;
use crate::rtu::Parity;
use tokio_serial::{DataBits, SerialPortBuilderExt, SerialStream, StopBits};

/// An open serial line, and the parity it accepted when it refused the configured one.
#[derive(Debug)]
pub struct Opened {
    /// The line.
    pub stream: SerialStream,
    /// `Some` when the line refused the configured parity and runs with this one instead.
    pub fallback: Option<Parity>,
}

fn builder(line: &SerialLine, parity: Parity) -> tokio_serial::SerialPortBuilder {
    let parity = match parity {
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::None => tokio_serial::Parity::None,
    };
    let stop = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    tokio_serial::new(&line.port, line.baud)
        .data_bits(DataBits::Eight)
        .parity(parity)
        .stop_bits(stop)
}

/// Opens `line`; one that refuses its parity is opened without.
pub fn open(line: &SerialLine) -> std::io::Result<Opened> {
    match builder(line, line.parity).open_native_async() {
        Ok(stream) => Ok(Opened {
            stream,
            fallback: None,
        }),
        Err(first) if line.parity != Parity::None => {
            match builder(line, Parity::None).open_native_async() {
                Ok(stream) => Ok(Opened {
                    stream,
                    fallback: Some(Parity::None),
                }),
                Err(_) => Err(first.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
