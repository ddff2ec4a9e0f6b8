//! One spool record on disk: `[length u32 LE][crc32 u32 LE][weight u64 LE][payload]`, where
//! `length` counts weight and payload and the CRC covers them. Pure: no I/O.
//!
//! The weight is what the record stands for (the samples of a batch), so that the spool counts
//! what it drops and what it holds in the sink's own unit.

/// Bytes before the payload.
pub const HEADER: usize = 16;

/// The largest record accepted (weight and payload), far above any batch a sink makes.
pub const MAX_RECORD: usize = 64 << 20;

/// Appends the frame of one record to `out`.
pub fn encode(out: &mut Vec<u8>, weight: u64, payload: &[u8]) {
    let len = (8 + payload.len()) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&weight.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&weight.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact record and the bytes it took.
    Record {
        /// Its weight.
        weight: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Frame length in bytes.
        size: usize,
    },
    /// The buffer ends inside a frame (a torn write, or more to read).
    Incomplete,
    /// A frame that cannot be right: a length out of bounds or a checksum that does not match.
    Corrupt,
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some(head) = buf.get(..8) else {
        return Decoded::Incomplete;
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(8..=MAX_RECORD).contains(&len) {
        return Decoded::Corrupt;
    }
    let Some(body) = buf.get(8..8 + len) else {
        return Decoded::Incomplete;
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt;
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&body[..8]);
    Decoded::Record {
        weight: u64::from_le_bytes(w),
        payload: &body[8..],
        size: 8 + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_and_their_faults() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, b"hello");
        assert_eq!(buf.len(), HEADER + 5);
        assert_eq!(
            decode(&buf),
            Decoded::Record {
                weight: 42,
                payload: b"hello",
                size: HEADER + 5
            }
        );
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
        let mut flipped = buf.clone();
        flipped[HEADER + 1] ^= 1;
        assert_eq!(decode(&flipped), Decoded::Corrupt);
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Decoded::Corrupt);
        assert_eq!(decode(&[0; 8]), Decoded::Corrupt, "zero length");
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..8)) {
            let mut buf = Vec::new();
            for (w, p) in &records {
                encode(&mut buf, *w, p);
            }
            let mut at = 0;
            for (w, p) in &records {
                match decode(&buf[at..]) {
                    Decoded::Record { weight, payload, size } => {
                        prop_assert_eq!(weight, *w);
                        prop_assert_eq!(payload, &p[..]);
                        at += size;
                    }
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert_eq!(at, buf.len());
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
