//! The Sparkplug B payload, as the specification's `sparkplug_b.proto` (proto2, package
//! `org.eclipse.tahu.protobuf`) defines it, derived with prost's macros so that no `protoc`
//! is needed to build.
//!
//! Only what an edge node of scalar tags writes and a host reads is declared: data sets,
//! templates, metadata and extensions are skipped by the decoder (as unknown fields are) and
//! never written. Field numbers and types are the `.proto`'s, so any Sparkplug peer reads
//! these messages and these read any peer's.

/// A Sparkplug B message body: `Payload` of `sparkplug_b.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// When the message was made, UTC milliseconds.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// 0–255, per edge node session; absent in NDEATH.
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    /// Identifies how `body` is to be read (unused by shopfloor).
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    /// Opaque bytes (unused by shopfloor).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// One metric of a payload: `Payload.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Its name; in births always, in data only when aliases are off.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Its alias, unique within the edge node.
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// When the value was read, UTC milliseconds.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// Its [`DataType`](super::DataType) number; required in births.
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    /// A value read earlier (sent after an outage), not the current one.
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    /// Not to be stored by a host.
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    /// No value.
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    /// Properties such as `engUnit` and `Quality`.
    #[prost(message, optional, tag = "9")]
    pub properties: Option<PropertySet>,
    /// The value, by type.
    #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<MetricValue>,
}

/// A metric's value: the `value` oneof of `Payload.Metric` (scalars only).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    /// Int8, Int16, Int32 (two's complement), UInt8, UInt16, UInt32.
    #[prost(uint32, tag = "10")]
    IntValue(u32),
    /// Int64 (two's complement), UInt64, DateTime.
    #[prost(uint64, tag = "11")]
    LongValue(u64),
    /// Float.
    #[prost(float, tag = "12")]
    FloatValue(f32),
    /// Double.
    #[prost(double, tag = "13")]
    DoubleValue(f64),
    /// Boolean.
    #[prost(bool, tag = "14")]
    BooleanValue(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    StringValue(String),
    /// Bytes, File, and the array types.
    #[prost(bytes = "vec", tag = "16")]
    BytesValue(Vec<u8>),
}

/// Named properties of a metric: `Payload.PropertySet`, keys and values pairwise.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertySet {
    /// The names.
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
    /// The values, in the order of `keys`.
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<PropertyValue>,
}

/// One property's value: `Payload.PropertyValue` (scalars only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyValue {
    /// Its [`DataType`](super::DataType) number.
    #[prost(uint32, optional, tag = "1")]
    pub r#type: Option<u32>,
    /// No value.
    #[prost(bool, optional, tag = "2")]
    pub is_null: Option<bool>,
    /// The value, by type.
    #[prost(oneof = "PropertyKind", tags = "3, 4, 5, 6, 7, 8")]
    pub value: Option<PropertyKind>,
}

/// A property's value: the `value` oneof of `Payload.PropertyValue` (scalars only).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PropertyKind {
    /// The 8 to 32-bit integer types.
    #[prost(uint32, tag = "3")]
    IntValue(u32),
    /// The 64-bit integer types.
    #[prost(uint64, tag = "4")]
    LongValue(u64),
    /// Float.
    #[prost(float, tag = "5")]
    FloatValue(f32),
    /// Double.
    #[prost(double, tag = "6")]
    DoubleValue(f64),
    /// Boolean.
    #[prost(bool, tag = "7")]
    BooleanValue(bool),
    /// String and Text.
    #[prost(string, tag = "8")]
    StringValue(String),
}

impl PropertySet {
    /// The value of property `key`, if the set has it.
    pub fn get(&self, key: &str) -> Option<&PropertyValue> {
        let i = self.keys.iter().position(|k| k == key)?;
        self.values.get(i)
    }

    /// Adds property `key`.
    pub fn push(&mut self, key: &str, value: PropertyValue) {
        self.keys.push(key.to_owned());
        self.values.push(value);
    }
}
