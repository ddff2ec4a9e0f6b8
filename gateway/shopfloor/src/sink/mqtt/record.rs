//! A message as the disk spool keeps it: `[qos u8][retain u8][topic length u16 LE][topic][payload]`.
//! Pure: no I/O.

use bytes::Bytes;

/// A message read back from a spool record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// 0 or 1.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
}

/// The record bytes of a message, appended to `out`. A topic longer than MQTT allows
/// (65,535 bytes) cannot reach here: topics are built from validated names.
pub fn encode(out: &mut Vec<u8>, topic: &str, payload: &[u8], qos: u8, retain: bool) {
    let len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
    out.push(qos);
    out.push(u8::from(retain));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&topic.as_bytes()[..usize::from(len)]);
    out.extend_from_slice(payload);
}

/// The message in `record`, or `None` when the bytes cannot be one.
pub fn decode(record: &[u8]) -> Option<Spooled> {
    let (&[qos, retain, l0, l1], rest) = record.split_first_chunk::<4>()?;
    if qos > 1 || retain > 1 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([l0, l1]));
    if rest.len() < len {
        return None;
    }
    let (topic, payload) = rest.split_at(len);
    Some(Spooled {
        topic: std::str::from_utf8(topic).ok()?.to_owned(),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: retain == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_that_cannot_be_messages_are_refused() {
        for bad in [
            &b""[..],
            &[1, 0, 5],
            &[2, 0, 0, 0],
            &[0, 2, 0, 0],
            &[0, 0, 5, 0, b'a'],
            &[0, 0, 2, 0, 0xff, 0xfe],
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        let mut ok = Vec::new();
        encode(&mut ok, "", b"", 0, false);
        assert_eq!(decode(&ok).map(|m| m.topic), Some(String::new()));
    }

    proptest! {
        #[test]
        fn a_message_comes_back_as_it_went(
            topic in "[a-z0-9/_-]{0,80}",
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            qos in 0u8..2,
            retain in any::<bool>(),
        ) {
            let mut out = Vec::new();
            encode(&mut out, &topic, &payload, qos, retain);
            let m = decode(&out).unwrap();
            prop_assert_eq!(m, Spooled { topic, payload: Bytes::from(payload), qos, retain });
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
