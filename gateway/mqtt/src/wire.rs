//! MQTT 3.1.1 packets as the sink writes and reads them (pure, no I/O).
//!
//! The sink only publishes, so it writes CONNECT, PUBLISH, PINGREQ and DISCONNECT and reads
//! CONNACK, PUBACK and PINGRESP; any other packet a broker sends is framed and skipped. Packets
//! are appended to one buffer so that a whole batch goes out in one write.

use thiserror::Error;

/// The largest remaining length MQTT can express (four length bytes).
pub const MAX_REMAINING: usize = 268_435_455;

/// A packet from the broker could not be framed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The remaining length runs over four bytes.
    #[error("malformed packet length from the broker")]
    Length,
    /// A packet the sink reads is shorter than its type requires.
    #[error("malformed {0} from the broker")]
    Short(&'static str),
    /// Larger than the sink accepts.
    #[error("packet of {0} bytes from the broker is larger than the sink accepts")]
    TooLarge(usize),
}

/// The last will: published by the broker when the connection dies without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Payload.
    pub payload: &'a [u8],
    /// 0 or 1.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
}

/// What a CONNECT carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Client identifier.
    pub client_id: &'a str,
    /// Keep-alive interval in seconds.
    pub keep_alive: u16,
    /// Ask for a clean session.
    pub clean_session: bool,
    /// Last will.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password (only with a user name, as 3.1.1 requires).
    pub password: Option<&'a [u8]>,
}

/// A packet from the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// CONNACK with its return code (0 is accepted).
    ConnAck {
        /// The broker kept a session.
        session_present: bool,
        /// Return code.
        code: u8,
    },
    /// PUBACK for a packet id.
    PubAck(u16),
    /// PINGRESP.
    PingResp,
    /// Anything else, by its packet type (high nibble of the first byte).
    Other(u8),
}

/// The name rumqttc and most tools give a CONNACK return code.
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        0 => "Success",
        1 => "RefusedProtocolVersion",
        2 => "BadClientId",
        3 => "ServiceUnavailable",
        4 => "BadUserNamePassword",
        5 => "NotAuthorized",
        _ => "Unknown",
    }
}

fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        buf.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    // Callers keep strings under 64 KiB (topics and ids are checked at config load).
    let n = s.len().min(usize::from(u16::MAX));
    buf.extend_from_slice(&(n as u16).to_be_bytes());
    buf.extend_from_slice(&s[..n]);
}

fn str_len(s: &[u8]) -> usize {
    2 + s.len().min(usize::from(u16::MAX))
}

/// Appends a CONNECT.
pub fn connect(buf: &mut Vec<u8>, c: &Connect) {
    let mut flags = 0u8;
    let mut len = 10 + str_len(c.client_id.as_bytes());
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos.min(2) << 3);
        if w.retain {
            flags |= 0x20;
        }
        len += str_len(w.topic.as_bytes()) + str_len(w.payload);
    }
    if let Some(u) = c.username {
        flags |= 0x80;
        len += str_len(u.as_bytes());
        if let Some(p) = c.password {
            flags |= 0x40;
            len += str_len(p);
        }
    }
    buf.push(0x10);
    put_len(buf, len);
    put_str(buf, b"MQTT");
    buf.push(4);
    buf.push(flags);
    buf.extend_from_slice(&c.keep_alive.to_be_bytes());
    put_str(buf, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        put_str(buf, w.topic.as_bytes());
        put_str(buf, w.payload);
    }
    if let Some(u) = c.username {
        put_str(buf, u.as_bytes());
        if let Some(p) = c.password {
            put_str(buf, p);
        }
    }
}

/// Appends a PUBLISH; `pkid` is written only at QoS 1.
pub fn publish(buf: &mut Vec<u8>, topic: &str, payload: &[u8], qos: u8, retain: bool, pkid: u16) {
    let qos = qos.min(1);
    let len = str_len(topic.as_bytes()) + if qos > 0 { 2 } else { 0 } + payload.len();
    buf.push(0x30 | (qos << 1) | u8::from(retain));
    put_len(buf, len);
    put_str(buf, topic.as_bytes());
    if qos > 0 {
        buf.extend_from_slice(&pkid.to_be_bytes());
    }
    buf.extend_from_slice(payload);
}

/// Appends a PINGREQ.
pub fn pingreq(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0xC0, 0]);
}

/// Appends a DISCONNECT.
pub fn disconnect(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0xE0, 0]);
}

/// Frames the first packet of `buf`: `None` when it is not complete yet, else the packet and
/// how many bytes it took. Packets larger than `max` are refused.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Incoming, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    let mut header = 1;
    loop {
        let Some(&b) = buf.get(header) else {
            return Ok(None);
        };
        remaining += usize::from(b & 0x7F) << (7 * (header - 1));
        header += 1;
        if b & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err(WireError::Length);
        }
    }
    if remaining > max {
        return Err(WireError::TooLarge(remaining));
    }
    let total = header + remaining;
    let Some(body) = buf.get(header..total) else {
        return Ok(None);
    };
    let kind = first >> 4;
    let packet = match kind {
        2 => match body {
            [flags, code, ..] => Incoming::ConnAck {
                session_present: flags & 1 == 1,
                code: *code,
            },
            _ => return Err(WireError::Short("CONNACK")),
        },
        4 => match body {
            [hi, lo, ..] => Incoming::PubAck(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(WireError::Short("PUBACK")),
        },
        13 => Incoming::PingResp,
        other => Incoming::Other(other),
    };
    Ok(Some((packet, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;
    use rumqttc::mqttbytes::v4;

    #[test]
    fn remaining_lengths_as_the_specification_lists_them() {
        for (n, bytes) in [
            (0usize, vec![0x00]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xFF, 0xFF, 0x7F]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (MAX_REMAINING, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut buf = Vec::new();
            put_len(&mut buf, n);
            assert_eq!(buf, bytes, "{n}");
        }
    }

    type Framed = Result<Option<(Incoming, usize)>, WireError>;

    #[test]
    fn broker_packets_are_framed() {
        let cases: &[(&[u8], Framed)] = &[
            (&[], Ok(None)),
            (&[0x40], Ok(None)),
            (&[0x40, 0x02, 0x00], Ok(None)),
            (
                &[0x40, 0x02, 0x01, 0x02, 0x40],
                Ok(Some((Incoming::PubAck(258), 4))),
            ),
            (
                &[0x20, 0x02, 0x00, 0x05],
                Ok(Some((
                    Incoming::ConnAck {
                        session_present: false,
                        code: 5,
                    },
                    4,
                ))),
            ),
            (
                &[0x20, 0x02, 0x01, 0x00],
                Ok(Some((
                    Incoming::ConnAck {
                        session_present: true,
                        code: 0,
                    },
                    4,
                ))),
            ),
            (&[0xD0, 0x00], Ok(Some((Incoming::PingResp, 2)))),
            (&[0x90, 0x03, 0, 1, 0], Ok(Some((Incoming::Other(9), 5)))),
            (&[0x40, 0x01, 0x00], Err(WireError::Short("PUBACK"))),
            (&[0x20, 0x00], Err(WireError::Short("CONNACK"))),
            (
                &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                Err(WireError::Length),
            ),
            (&[0x30, 0x80, 0x80, 0x01], Err(WireError::TooLarge(16_384))),
        ];
        for (bytes, want) in cases {
            assert_eq!(&decode(bytes, 1000), want, "{bytes:?}");
        }
    }

    #[test]
    fn connect_is_read_back_by_another_implementation() {
        let mut buf = Vec::new();
        connect(
            &mut buf,
            &Connect {
                client_id: "shopfloor-hall",
                keep_alive: 15,
                clean_session: true,
                will: Some(Will {
                    topic: "shopfloor/hall/gateway",
                    payload: b"{\"online\":false}",
                    qos: 1,
                    retain: true,
                }),
                username: Some("gateway"),
                password: Some(b"secret"),
            },
        );
        let mut stream = BytesMut::from(&buf[..]);
        let Ok(v4::Packet::Connect(c)) = v4::Packet::read(&mut stream, 1 << 20) else {
            panic!("not read as CONNECT: {buf:?}");
        };
        assert!(stream.is_empty());
        assert_eq!(c.client_id, "shopfloor-hall");
        assert_eq!(c.keep_alive, 15);
        assert!(c.clean_session);
        let will = c
            .last_will
            .as_ref()
            .map(|w| (w.topic.as_str(), &w.message[..], w.retain));
        assert_eq!(
            will,
            Some(("shopfloor/hall/gateway", &b"{\"online\":false}"[..], true))
        );
        let login = c
            .login
            .as_ref()
            .map(|l| (l.username.as_str(), l.password.as_str()));
        assert_eq!(login, Some(("gateway", "secret")));
    }

    proptest! {
        #[test]
        fn publish_is_read_back_by_another_implementation(
            topic in "[a-z/]{1,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..3000),
            qos in 0u8..2,
            retain: bool,
            pkid in 1u16..,
        ) {
            let mut buf = Vec::new();
            publish(&mut buf, &topic, &payload, qos, retain, pkid);
            pingreq(&mut buf);
            let mut stream = BytesMut::from(&buf[..]);
            let Ok(v4::Packet::Publish(p)) = v4::Packet::read(&mut stream, 1 << 20) else {
                panic!("not read as PUBLISH");
            };
            prop_assert_eq!(&p.topic, &topic);
            prop_assert_eq!(&p.payload[..], &payload[..]);
            prop_assert_eq!(p.qos as u8, qos);
            prop_assert_eq!(p.retain, retain);
            prop_assert_eq!(p.pkid, if qos == 1 { pkid } else { 0 });
            prop_assert!(matches!(v4::Packet::read(&mut stream, 10), Ok(v4::Packet::PingReq)));
        }

        #[test]
        fn decoding_any_bytes_never_panics_and_takes_what_it_frames(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(Some((_, used))) = decode(&bytes, 1 << 20) {
                prop_assert!(used >= 2 && used <= bytes.len());
            }
        }

        #[test]
        fn every_remaining_length_is_read_back(n in 0usize..=MAX_REMAINING) {
            let mut buf = vec![0xE0];
            put_len(&mut buf, n);
            // Only the header: framing waits for the body, or refuses it as too large.
            let got = decode(&buf, MAX_REMAINING);
            if n == 0 {
                prop_assert_eq!(got, Ok(Some((Incoming::Other(14), 2))));
            } else {
                prop_assert_eq!(got, Ok(None));
            }
            prop_assert_eq!(decode(&buf, n.saturating_sub(1)).is_err(), n > 0);
        }
    }
}
