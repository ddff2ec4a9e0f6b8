//! The one reading model of the gateway.
//!
//! A [`Sample`] is 32 bytes and owns no heap memory unless its value is text: numbers and bools
//! travel through the ring as plain bytes. Machine and tag names are interned as small ids by the
//! [`crate::Catalog`] when the configuration loads, so a sample never carries a name.

use crate::status::MachineState;
use std::fmt;
use std::sync::Arc;

/// A machine's index in the [`crate::Catalog`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineId(pub u16);

/// A tag's index within its machine in the [`crate::Catalog`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub u16);

impl MachineId {
    /// The index as `usize`, for slice access.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl TagId {
    /// The tag id of a status event: no tag of any machine has it (a catalog holds at most
    /// `u16::MAX` tags per machine, indices below it), so a lookup by it finds nothing.
    pub const STATUS: TagId = TagId(u16::MAX);

    /// The index as `usize`, for slice access.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How far a value can be trusted, as OPC UA and most historians grade it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Quality {
    /// Read from the machine just now.
    #[default]
    Good,
    /// The machine answered but flags the value as doubtful.
    Uncertain,
    /// No usable value: the machine did not answer, or the value is not a finite number.
    Bad,
}

impl Quality {
    /// The word used in payloads: `good`, `uncertain` or `bad`.
    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
        }
    }

    /// Parses the payload word back.
    #[inline]
    pub fn parse(word: &str) -> Option<Quality> {
        match word {
            "good" => Some(Quality::Good),
            "uncertain" => Some(Quality::Uncertain),
            "bad" => Some(Quality::Bad),
            _ => None,
        }
    }
}

/// Shared, immutable text behind one thin pointer, so that a [`Value`] stays 16 bytes and
/// fanning a sample out to several sinks never copies the text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(pub(crate) Arc<String>);

impl Text {
    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many values share this text (for leak tests).
    #[inline]
    pub fn strong_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Text {
    #[inline]
    fn from(s: &str) -> Text {
        Text(Arc::new(s.to_owned()))
    }
}

impl From<String> for Text {
    #[inline]
    fn from(s: String) -> Text {
        Text(Arc::new(s))
    }
}

/// A reading's value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// No value: the reading is of bad quality.
    #[default]
    Null,
    /// A bit, coil or boolean node.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float, or any number with a scale or offset applied. Always finite inside a sample.
    F64(f64),
    /// Text, such as a program or material name.
    Text(Text),
}

impl Value {
    /// True for [`Value::Null`].
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a float, for charts and metrics; `None` for null and text.
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::I64(v) => Some(v as f64),
            Value::U64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::Null | Value::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Text(s) => f.write_str(s.as_str()),
        }
    }
}

/// What the 8-byte payload of a [`Sample`] holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Null,
    Bool,
    I64,
    U64,
    F64,
    Text,
    /// A status event: the machine is connecting.
    Connecting,
    /// A status event: the machine answers.
    Online,
    /// A status event: the machine stopped answering; the payload is the error's [`Text`].
    Offline,
}

impl Kind {
    /// Whether the payload is a `Text` pointer this sample owns one count of.
    #[inline]
    fn owns_text(self) -> bool {
        matches!(self, Kind::Text | Kind::Offline)
    }
}

/// The value bits of a [`Sample`]: a number's bits, or the thin pointer of a [`Text`]'s `Arc`.
#[derive(Copy, Clone)]
union Payload {
    bits: u64,
    text: *const String,
}

/// A borrowed view of a sample's value, for encoders that must not clone text.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// See [`Value::Null`].
    Null,
    /// See [`Value::Bool`].
    Bool(bool),
    /// See [`Value::I64`].
    I64(i64),
    /// See [`Value::U64`].
    U64(u64),
    /// See [`Value::F64`].
    F64(f64),
    /// See [`Value::Text`].
    Text(&'a str),
}

impl ValueRef<'_> {
    /// The value as a float, for charts and metrics; `None` for null and text.
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            ValueRef::I64(v) => Some(v as f64),
            ValueRef::U64(v) => Some(v as f64),
            ValueRef::F64(v) => Some(v),
            ValueRef::Null | ValueRef::Text(_) => None,
        }
    }
}

/// One reading of one tag of one machine.
///
/// 32 bytes, two to a cache line: the ring moves samples by copying bytes, so their size is
/// the ring's throughput (see `benches/ring.rs`). The value is packed as a kind byte and an
/// 8-byte payload instead of a [`Value`] (16 bytes with its tag and padding) for that reason.
/// Constructors keep the model's rule: the value is null exactly when the quality is bad.
pub struct Sample {
    /// UTC milliseconds: the device's own timestamp where it gives one, else arrival time.
    pub timestamp_ms: i64,
    /// Per machine and tag: 1 for the first sample after start, then +1; a gap means loss.
    pub seq: u64,
    payload: Payload,
    /// Which machine.
    pub machine: MachineId,
    /// Which tag of that machine.
    pub tag: TagId,
    quality: Quality,
    kind: Kind,
}

// SAFETY: the only non-Send/Sync part is the `Text` pointer, which is an `Arc<String>` owned by
// this sample; `Arc<String>` is Send and Sync.
unsafe impl Send for Sample {}
// SAFETY: as above; shared access only reads the string.
unsafe impl Sync for Sample {}

impl Sample {
    /// A sample, keeping the model's rule that bad quality means no value and that a float that
    /// is NaN or infinite is no value of bad quality.
    #[inline]
    pub fn new(
        machine: MachineId,
        tag: TagId,
        timestamp_ms: i64,
        seq: u64,
        value: Value,
        quality: Quality,
    ) -> Sample {
        let (kind, payload) = match value {
            Value::F64(v) if !v.is_finite() => (Kind::Null, Payload { bits: 0 }),
            _ if quality == Quality::Bad => (Kind::Null, Payload { bits: 0 }),
            Value::Null => (Kind::Null, Payload { bits: 0 }),
            Value::Bool(b) => (Kind::Bool, Payload { bits: u64::from(b) }),
            Value::I64(v) => (Kind::I64, Payload { bits: v as u64 }),
            Value::U64(v) => (Kind::U64, Payload { bits: v }),
            Value::F64(v) => (Kind::F64, Payload { bits: v.to_bits() }),
            Value::Text(t) => (
                Kind::Text,
                Payload {
                    text: Arc::into_raw(t.0),
                },
            ),
        };
        let quality = if kind == Kind::Null {
            Quality::Bad
        } else {
            quality
        };
        Sample {
            timestamp_ms,
            seq,
            payload,
            machine,
            tag,
            quality,
            kind,
        }
    }

    /// A bad-quality sample without a value, as published when a machine stops answering.
    #[inline]
    pub fn bad(machine: MachineId, tag: TagId, timestamp_ms: i64, seq: u64) -> Sample {
        Sample::new(machine, tag, timestamp_ms, seq, Value::Null, Quality::Bad)
    }

    /// A status event of `machine` at `timestamp_ms`, travelling among its samples so that
    /// every sink sees it in its place: after the last sample read before the change, before
    /// the first one read after it. `error` is kept only for [`MachineState::Offline`].
    pub fn status(
        machine: MachineId,
        timestamp_ms: i64,
        state: MachineState,
        error: Option<&str>,
    ) -> Sample {
        let (kind, payload) = match state {
            MachineState::Connecting => (Kind::Connecting, Payload { bits: 0 }),
            MachineState::Online => (Kind::Online, Payload { bits: 0 }),
            MachineState::Offline => (
                Kind::Offline,
                Payload {
                    text: Arc::into_raw(Arc::new(error.unwrap_or_default().to_owned())),
                },
            ),
        };
        Sample {
            timestamp_ms,
            seq: 0,
            payload,
            machine,
            tag: TagId::STATUS,
            quality: Quality::Bad,
            kind,
        }
    }

    /// True for a status event (see [`Sample::status`]); it has no value and no `seq`.
    #[inline]
    pub fn is_status(&self) -> bool {
        matches!(self.kind, Kind::Connecting | Kind::Online | Kind::Offline)
    }

    /// The state and error (empty for none) of a status event; `None` for a reading.
    pub fn as_status(&self) -> Option<(MachineState, &str)> {
        match self.kind {
            Kind::Connecting => Some((MachineState::Connecting, "")),
            Kind::Online => Some((MachineState::Online, "")),
            // SAFETY: an Offline kind's payload is the Text pointer `Sample::status` wrote.
            Kind::Offline => Some((MachineState::Offline, unsafe {
                (*self.payload.text).as_str()
            })),
            _ => None,
        }
    }

    /// How far the value can be trusted.
    #[inline]
    pub fn quality(&self) -> Quality {
        self.quality
    }

    /// The value, borrowed.
    #[inline]
    pub fn value(&self) -> ValueRef<'_> {
        // SAFETY: `kind` says which union field `Sample::new` wrote; a Text pointer stays valid
        // while this sample holds its reference count.
        unsafe {
            match self.kind {
                Kind::Null | Kind::Connecting | Kind::Online | Kind::Offline => ValueRef::Null,
                Kind::Bool => ValueRef::Bool(self.payload.bits != 0),
                Kind::I64 => ValueRef::I64(self.payload.bits as i64),
                Kind::U64 => ValueRef::U64(self.payload.bits),
                Kind::F64 => ValueRef::F64(f64::from_bits(self.payload.bits)),
                Kind::Text => ValueRef::Text((*self.payload.text).as_str()),
            }
        }
    }

    /// The value, owned (text is shared, not copied).
    pub fn to_value(&self) -> Value {
        match self.value() {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::I64(v) => Value::I64(v),
            ValueRef::U64(v) => Value::U64(v),
            ValueRef::F64(v) => Value::F64(v),
            ValueRef::Text(_) => {
                // SAFETY: kind is Text, so the pointer came from Arc::into_raw and this sample
                // owns one count; we add one for the returned handle.
                let arc = unsafe {
                    Arc::increment_strong_count(self.payload.text);
                    Arc::from_raw(self.payload.text)
                };
                Value::Text(Text(arc))
            }
        }
    }
}

impl Clone for Sample {
    #[inline]
    fn clone(&self) -> Sample {
        if self.kind.owns_text() {
            // SAFETY: the pointer came from Arc::into_raw and this sample owns one count.
            unsafe { Arc::increment_strong_count(self.payload.text) };
        }
        Sample {
            timestamp_ms: self.timestamp_ms,
            seq: self.seq,
            payload: self.payload,
            machine: self.machine,
            tag: self.tag,
            quality: self.quality,
            kind: self.kind,
        }
    }
}

impl Drop for Sample {
    #[inline]
    fn drop(&mut self) {
        if self.kind.owns_text() {
            // SAFETY: the pointer came from Arc::into_raw and this sample owns one count.
            unsafe { drop(Arc::from_raw(self.payload.text)) };
        }
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Sample) -> bool {
        self.timestamp_ms == other.timestamp_ms
            && self.seq == other.seq
            && self.machine == other.machine
            && self.tag == other.tag
            && self.quality == other.quality
            && self.value() == other.value()
            && self.as_status() == other.as_status()
    }
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("machine", &self.machine)
            .field("tag", &self.tag)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("seq", &self.seq)
            .field("value", &self.value())
            .field("quality", &self.quality)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Sample>(), 32);
    }

    #[test]
    fn every_kind_of_value_reads_back() {
        let values = [
            Value::Bool(true),
            Value::Bool(false),
            Value::I64(-5),
            Value::I64(i64::MIN),
            Value::U64(u64::MAX),
            Value::F64(-0.5),
            Value::Text(Text::from("PRG-7")),
        ];
        for v in values {
            let s = Sample::new(MachineId(1), TagId(2), 3, 4, v.clone(), Quality::Good);
            assert_eq!(s.to_value(), v);
            assert_eq!(s.clone(), s);
        }
    }

    #[test]
    fn text_is_shared_and_released() {
        let t = Text::from("MAT-PP");
        let s = Sample::new(
            MachineId(0),
            TagId(0),
            0,
            1,
            Value::Text(t.clone()),
            Quality::Good,
        );
        let c = s.clone();
        let v = c.to_value();
        assert_eq!(t.strong_count(), 4);
        assert_eq!(s.value(), ValueRef::Text("MAT-PP"));
        drop((s, c, v));
        assert_eq!(t.strong_count(), 1);
    }

    #[test]
    fn non_finite_floats_become_bad_null() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let s = Sample::new(MachineId(0), TagId(0), 1, 1, Value::F64(v), Quality::Good);
            assert_eq!(s.value(), ValueRef::Null);
            assert_eq!(s.quality(), Quality::Bad);
        }
    }

    #[test]
    fn bad_quality_drops_the_value_and_null_is_bad() {
        let s = Sample::new(MachineId(0), TagId(0), 1, 1, Value::I64(3), Quality::Bad);
        assert_eq!(s.value(), ValueRef::Null);
        let s = Sample::new(MachineId(0), TagId(0), 1, 1, Value::Null, Quality::Good);
        assert_eq!(s.quality(), Quality::Bad);
    }

    #[test]
    fn good_and_uncertain_keep_their_value() {
        let s = Sample::new(
            MachineId(1),
            TagId(2),
            3,
            4,
            Value::U64(5),
            Quality::Uncertain,
        );
        assert_eq!(
            (s.value(), s.quality()),
            (ValueRef::U64(5), Quality::Uncertain)
        );
    }

    #[test]
    fn a_status_event_reads_back_and_releases_its_error() {
        for (state, error) in [
            (MachineState::Online, ""),
            (MachineState::Connecting, ""),
            (MachineState::Offline, "connect: refused"),
        ] {
            let s = Sample::status(MachineId(3), 7, state, Some(error));
            let c = s.clone();
            assert!(c.is_status());
            assert_eq!(c.as_status(), Some((state, error)));
            assert_eq!(
                (c.tag, c.value(), c.seq),
                (TagId::STATUS, ValueRef::Null, 0)
            );
            drop(s);
            assert_eq!(c.as_status(), Some((state, error)));
        }
        let reading = Sample::new(MachineId(0), TagId(0), 1, 1, Value::U64(1), Quality::Good);
        assert!(!reading.is_status());
        assert_eq!(reading.as_status(), None);
    }

    #[test]
    fn quality_words_round_trip() {
        for q in [Quality::Good, Quality::Uncertain, Quality::Bad] {
            assert_eq!(Quality::parse(q.as_str()), Some(q));
        }
        assert_eq!(Quality::parse("GOOD"), None);
    }
}
