//! Modbus RTU frames: a unit id, a PDU and a CRC-16, with no length field. Pure: no I/O.
//!
//! The framing is done here rather than with tokio-modbus's RTU codec because the contract
//! needs what that codec does not do: it skips bytes after a bad CRC to find a frame further
//! on (so a corrupt reply can be mistaken for a later one), and it knows nothing of the silent
//! interval or of a reply from another unit. Here a reply is checked whole against the request
//! it answers, and anything else is an error.

use crate::plan::ReadRequest;
use crate::register::Area;
use std::time::Duration;
use thiserror::Error;

/// The longest RTU frame the protocol allows (unit, PDU of 253 bytes, CRC).
pub const MAX_FRAME: usize = 256;

/// A request frame: unit, function, start, count and CRC.
pub const REQUEST_LEN: usize = 8;

/// An exception reply: unit, function | 0x80, code, CRC.
pub const EXCEPTION_LEN: usize = 5;

/// The CRC-16 of Modbus (polynomial 0xA001 reflected, initial 0xFFFF), as sent: low byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `body` with its CRC appended.
fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Whether `frame` ends in the CRC of what comes before it.
pub fn crc_ok(frame: &[u8]) -> bool {
    match frame.len().checked_sub(2) {
        Some(n) if n > 0 => crc16(&frame[..n]).to_le_bytes() == [frame[n], frame[n + 1]],
        _ => false,
    }
}

/// The function code that reads `area`.
pub fn function(area: Area) -> u8 {
    match area {
        Area::Coil => 0x01,
        Area::Discrete => 0x02,
        Area::Holding => 0x03,
        Area::Input => 0x04,
    }
}

/// The area a read function reads, if `code` is one.
pub fn area_of(code: u8) -> Option<Area> {
    match code {
        0x01 => Some(Area::Coil),
        0x02 => Some(Area::Discrete),
        0x03 => Some(Area::Holding),
        0x04 => Some(Area::Input),
        _ => None,
    }
}

/// The request frame that reads `r` from `unit`.
pub fn request(unit: u8, r: &ReadRequest) -> Vec<u8> {
    read_frame(unit, r.area, r.start, r.count)
}

/// The request frame that reads `count` registers or bits of `area` from `start`.
pub fn read_frame(unit: u8, area: Area, start: u16, count: u16) -> Vec<u8> {
    let mut body = vec![unit, function(area)];
    body.extend_from_slice(&start.to_be_bytes());
    body.extend_from_slice(&count.to_be_bytes());
    with_crc(body)
}

/// Bytes of the data field of a reply to a read of `count` registers or bits.
pub fn data_len(area: Area, count: u16) -> usize {
    if area.is_bits() {
        usize::from(count).div_ceil(8)
    } else {
        2 * usize::from(count)
    }
}

/// Bytes of a normal reply to a read of `count` of `area`: unit, function, byte count, data, CRC.
pub fn reply_len(area: Area, count: u16) -> usize {
    5 + data_len(area, count)
}

/// How many bytes the reply that starts with `head` has in all, once its first three bytes are
/// known; `None` before that. Tells the reader when a frame is complete without waiting for the
/// silence after it.
pub fn frame_len(head: &[u8]) -> Option<usize> {
    let [_, code, third, ..] = head else {
        return None;
    };
    if code & 0x80 != 0 {
        Some(EXCEPTION_LEN)
    } else {
        Some(5 + usize::from(*third))
    }
}

/// Why a reply frame is not the answer to the request sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Fewer bytes than the frame needs, or more than it says.
    #[error("reply cut short or overlong ({got} bytes, expected {expected})")]
    Length {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The CRC does not match the bytes.
    #[error("reply has a wrong CRC")]
    Crc,
    /// A reply from another unit than the one asked.
    #[error("reply from unit {got}, expected unit {expected}")]
    Unit {
        /// Asked.
        expected: u8,
        /// Answered.
        got: u8,
    },
    /// A reply for another function than the one asked.
    #[error("reply for function {got:#04x}, expected {expected:#04x}")]
    Function {
        /// Asked.
        expected: u8,
        /// Answered.
        got: u8,
    },
    /// The byte count does not fit the request.
    #[error("reply holds {got} data bytes, expected {expected}")]
    ByteCount {
        /// Expected.
        expected: usize,
        /// Declared.
        got: usize,
    },
}

/// A checked reply frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The data field: registers high byte first, or bits packed least significant first.
    Data(Vec<u8>),
    /// A Modbus exception code.
    Exception(u8),
}

/// Checks `frame` as the reply of `unit` to a read of `count` of `area`. A reply with a wrong
/// CRC, from another unit, for another function, or of another length is an error, never data.
pub fn parse_reply(unit: u8, area: Area, count: u16, frame: &[u8]) -> Result<Answer, FrameError> {
    let code = function(area);
    let expected_len = match frame.get(1) {
        Some(c) if c & 0x80 != 0 => EXCEPTION_LEN,
        _ => reply_len(area, count),
    };
    if frame.len() != expected_len {
        return Err(FrameError::Length {
            expected: expected_len,
            got: frame.len(),
        });
    }
    if !crc_ok(frame) {
        return Err(FrameError::Crc);
    }
    if frame[0] != unit {
        return Err(FrameError::Unit {
            expected: unit,
            got: frame[0],
        });
    }
    if frame[1] & 0x7F != code {
        return Err(FrameError::Function {
            expected: code,
            got: frame[1] & 0x7F,
        });
    }
    if frame[1] & 0x80 != 0 {
        return Ok(Answer::Exception(frame[2]));
    }
    let want = data_len(area, count);
    if usize::from(frame[2]) != want {
        return Err(FrameError::ByteCount {
            expected: want,
            got: usize::from(frame[2]),
        });
    }
    Ok(Answer::Data(frame[3..3 + want].to_vec()))
}

/// The registers of a data field, high byte first.
pub fn registers(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect()
}

/// The bits of a data field, least significant bit of the first byte first.
pub fn bits(data: &[u8]) -> Vec<bool> {
    data.iter()
        .flat_map(|b| (0..8).map(move |i| b & (1 << i) != 0))
        .collect()
}

/// A read request as a device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCall {
    /// The unit addressed.
    pub unit: u8,
    /// The function code (any, so that a device can refuse the ones it does not serve).
    pub function: u8,
    /// First address.
    pub start: u16,
    /// Registers or bits.
    pub count: u16,
}

/// A request frame as a device reads it: `None` unless it is 8 bytes with a good CRC. (Every
/// function the gateway sends has this shape; a device answers others with an exception.)
pub fn parse_request(frame: &[u8]) -> Option<ReadCall> {
    if frame.len() != REQUEST_LEN || !crc_ok(frame) {
        return None;
    }
    Some(ReadCall {
        unit: frame[0],
        function: frame[1],
        start: u16::from_be_bytes([frame[2], frame[3]]),
        count: u16::from_be_bytes([frame[4], frame[5]]),
    })
}

/// A device's normal reply frame carrying `data`.
pub fn data_reply(unit: u8, function: u8, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 5);
    body.extend_from_slice(&[unit, function, data.len().min(255) as u8]);
    body.extend_from_slice(&data[..data.len().min(255)]);
    with_crc(body)
}

/// A device's exception reply frame.
pub fn exception_reply(unit: u8, function: u8, code: u8) -> Vec<u8> {
    with_crc(vec![unit, function | 0x80, code])
}

/// Registers as a data field.
pub fn pack_registers(regs: &[u16]) -> Vec<u8> {
    regs.iter().flat_map(|r| r.to_be_bytes()).collect()
}

/// Bits as a data field.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, on)| if *on { b | (1 << i) } else { b })
        })
        .collect()
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    /// Even parity (the Modbus default).
    Even,
    /// Odd parity.
    Odd,
    /// No parity bit (the spec then asks for two stop bits; many devices use one).
    None,
}

impl Parity {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::Even => "even",
            Parity::Odd => "odd",
            Parity::None => "none",
        }
    }
}

/// The timing of a line: what one character costs on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTiming {
    /// Bits per second.
    pub baud: u32,
    /// Bits per character: start, 8 data, parity if any, stop bits.
    pub bits_per_char: u32,
}

impl LineTiming {
    /// The timing of a line of `baud` with `parity` and `stop_bits`.
    pub fn new(baud: u32, parity: Parity, stop_bits: u8) -> LineTiming {
        let parity_bit = u32::from(parity != Parity::None);
        LineTiming {
            baud: baud.max(1),
            bits_per_char: 1 + 8 + parity_bit + u32::from(stop_bits.clamp(1, 2)),
        }
    }

    /// The wire time of `chars` characters.
    pub fn chars(&self, chars: usize) -> Duration {
        let bits = chars as u64 * u64::from(self.bits_per_char);
        Duration::from_nanos(bits * 1_000_000_000 / u64::from(self.baud))
    }

    /// The silence that must precede a frame: 3.5 characters, and 1.75 ms above 19200 baud
    /// (as the Modbus serial line specification fixes it there).
    pub fn silence(&self) -> Duration {
        if self.baud > 19200 {
            Duration::from_micros(1750)
        } else {
            self.chars(7) / 2
        }
    }

    /// The wire time of one read of `count` of `area`: request, silence, reply, silence.
    pub fn exchange(&self, area: Area, count: u16) -> Duration {
        self.chars(REQUEST_LEN + reply_len(area, count)) + 2 * self.silence()
    }
}

#[cfg(test)]
mod tests;
