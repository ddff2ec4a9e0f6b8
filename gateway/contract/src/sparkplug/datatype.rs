//! Sparkplug data types and how a sample's value is carried in a metric of each.

use super::proto::MetricValue;
use shopfloor_core::Value;

/// A metric's type: the `DataType` enum of `sparkplug_b.proto` (scalar types).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DataType {
    /// Signed 8-bit, in `int_value`.
    Int8 = 1,
    /// Signed 16-bit, in `int_value`.
    Int16 = 2,
    /// Signed 32-bit, in `int_value`.
    Int32 = 3,
    /// Signed 64-bit, in `long_value`.
    Int64 = 4,
    /// Unsigned 8-bit, in `int_value`.
    UInt8 = 5,
    /// Unsigned 16-bit, in `int_value`.
    UInt16 = 6,
    /// Unsigned 32-bit, in `int_value`.
    UInt32 = 7,
    /// Unsigned 64-bit, in `long_value`.
    UInt64 = 8,
    /// IEEE 754 single, in `float_value`.
    Float = 9,
    /// IEEE 754 double, in `double_value`.
    Double = 10,
    /// In `boolean_value`.
    Boolean = 11,
    /// In `string_value`.
    String = 12,
    /// UTC milliseconds, in `long_value`.
    DateTime = 13,
    /// In `string_value`.
    Text = 14,
}

impl DataType {
    /// Every scalar type, for tables and tests.
    pub const ALL: [DataType; 14] = [
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float,
        DataType::Double,
        DataType::Boolean,
        DataType::String,
        DataType::DateTime,
        DataType::Text,
    ];

    /// The type's number on the wire.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The type of wire number `code`, if it is a scalar type shopfloor reads.
    pub fn from_code(code: u32) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The type a value of this kind is published as when nothing more is known of the tag.
    pub fn of(value: &Value) -> Option<DataType> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => DataType::Boolean,
            Value::I64(_) => DataType::Int64,
            Value::U64(_) => DataType::UInt64,
            Value::F64(_) => DataType::Double,
            Value::Text(_) => DataType::String,
        })
    }

    /// `value` as a metric of this type, or `None` when it does not fit (a fraction in an
    /// integer type, a number out of range, text in a number): such a reading goes out as bad.
    pub fn carry(self, value: &Value) -> Option<MetricValue> {
        use DataType as T;
        Some(match (self, value) {
            (T::Boolean, Value::Bool(b)) => MetricValue::BooleanValue(*b),
            (T::String | T::Text, Value::Text(t)) => MetricValue::StringValue(t.as_str().into()),
            (T::Float, v) => MetricValue::FloatValue(v.as_f64()? as f32),
            (T::Double, v) => MetricValue::DoubleValue(v.as_f64()?),
            (T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::DateTime, v) => {
                self.signed(whole(v).and_then(|w| i64::try_from(w).ok())?)?
            }
            (T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64, v) => {
                self.unsigned(whole(v).and_then(|w| u64::try_from(w).ok())?)?
            }
            _ => return None,
        })
    }

    fn signed(self, v: i64) -> Option<MetricValue> {
        // Signed types travel as their two's complement at their own width, as the
        // specification's examples show (Int16 -23 is 65513); a host that sign-extends to 32
        // bits (Eclipse Tahu) reads them the same, since it keeps only the width.
        match self {
            DataType::Int8 => i8::try_from(v)
                .ok()
                .map(|v| MetricValue::IntValue(u32::from(v as u8))),
            DataType::Int16 => i16::try_from(v)
                .ok()
                .map(|v| MetricValue::IntValue(u32::from(v as u16))),
            DataType::Int32 => i32::try_from(v)
                .ok()
                .map(|v| MetricValue::IntValue(v as u32)),
            _ => Some(MetricValue::LongValue(v as u64)),
        }
    }

    fn unsigned(self, v: u64) -> Option<MetricValue> {
        let int = |v: u64| u32::try_from(v).ok().map(MetricValue::IntValue);
        match self {
            DataType::UInt8 => u8::try_from(v).ok().and_then(|v| int(v.into())),
            DataType::UInt16 => u16::try_from(v).ok().and_then(|v| int(v.into())),
            DataType::UInt32 => int(v),
            _ => Some(MetricValue::LongValue(v)),
        }
    }

    /// What a host reads from a metric of this type, or `None` when the value field does not
    /// belong to the type.
    pub fn read(self, value: &MetricValue) -> Option<Value> {
        use DataType as T;
        Some(match (self, value) {
            (T::Boolean, MetricValue::BooleanValue(b)) => Value::Bool(*b),
            (T::String | T::Text, MetricValue::StringValue(s)) => Value::Text(s.as_str().into()),
            (T::Float, MetricValue::FloatValue(f)) => finite(f64::from(*f))?,
            (T::Double, MetricValue::DoubleValue(f)) => finite(*f)?,
            (T::Int8, MetricValue::IntValue(v)) => Value::I64((*v as u8 as i8).into()),
            (T::Int16, MetricValue::IntValue(v)) => Value::I64((*v as u16 as i16).into()),
            (T::Int32, MetricValue::IntValue(v)) => Value::I64((*v as i32).into()),
            (T::Int64 | T::DateTime, MetricValue::LongValue(v)) => Value::I64(*v as i64),
            (T::UInt8, MetricValue::IntValue(v)) => Value::U64((*v as u8).into()),
            (T::UInt16, MetricValue::IntValue(v)) => Value::U64((*v as u16).into()),
            (T::UInt32, MetricValue::IntValue(v)) => Value::U64((*v).into()),
            (T::UInt64, MetricValue::LongValue(v)) => Value::U64(*v),
            _ => return None,
        })
    }
}

/// A number without a fraction, as a wide integer.
fn whole(v: &Value) -> Option<i128> {
    match v {
        Value::I64(i) => Some((*i).into()),
        Value::U64(u) => Some((*u).into()),
        Value::F64(f) if f.fract() == 0.0 && f.abs() < 1.8e19 => Some(*f as i128),
        _ => None,
    }
}

fn finite(f: f64) -> Option<Value> {
    f.is_finite().then_some(Value::F64(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_travel_in_their_types_field() {
        use MetricValue as M;
        let table: [(DataType, Value, Option<MetricValue>); 16] = [
            (DataType::Int8, Value::I64(-23), Some(M::IntValue(233))),
            (
                DataType::Int32,
                Value::I64(-23),
                Some(M::IntValue(4_294_967_273)),
            ),
            (
                DataType::Boolean,
                Value::Bool(true),
                Some(M::BooleanValue(true)),
            ),
            (DataType::Int16, Value::I64(-2), Some(M::IntValue(0xFFFE))),
            (DataType::Int8, Value::I64(200), None),
            (
                DataType::UInt16,
                Value::U64(65535),
                Some(M::IntValue(65535)),
            ),
            (DataType::UInt16, Value::U64(65536), None),
            (DataType::UInt32, Value::F64(3.0), Some(M::IntValue(3))),
            (DataType::UInt32, Value::F64(3.5), None),
            (DataType::UInt32, Value::I64(-1), None),
            (
                DataType::Int64,
                Value::I64(-1),
                Some(M::LongValue(u64::MAX)),
            ),
            (
                DataType::UInt64,
                Value::U64(u64::MAX),
                Some(M::LongValue(u64::MAX)),
            ),
            (DataType::Float, Value::F64(1.5), Some(M::FloatValue(1.5))),
            (DataType::Double, Value::U64(7), Some(M::DoubleValue(7.0))),
            (
                DataType::String,
                Value::Text("PRG-1".into()),
                Some(M::StringValue("PRG-1".into())),
            ),
            (DataType::Double, Value::Text("x".into()), None),
        ];
        for (t, v, want) in table {
            assert_eq!(t.carry(&v), want, "{t:?} {v:?}");
        }
    }

    #[test]
    fn codes_are_the_protos() {
        assert_eq!(DataType::Int8.code(), 1);
        assert_eq!(DataType::UInt64.code(), 8);
        assert_eq!(DataType::Boolean.code(), 11);
        assert_eq!(DataType::Text.code(), 14);
        for t in DataType::ALL {
            assert_eq!(DataType::from_code(t.code()), Some(t));
        }
        assert_eq!(DataType::from_code(0), None);
        assert_eq!(DataType::from_code(16), None);
    }

    proptest! {
        #[test]
        fn integers_read_back_as_written(v in any::<i64>(), u in any::<u64>()) {
            for t in DataType::ALL {
                for value in [Value::I64(v), Value::U64(u)] {
                    if let Some(m) = t.carry(&value) {
                        let back = t.read(&m);
                        prop_assert!(back.is_some(), "{t:?} {value:?}");
                        let (a, b) = (back.and_then(|b| b.as_f64()), value.as_f64());
                        if !matches!(t, DataType::Float | DataType::Double) {
                            prop_assert_eq!(a, b);
                        }
                    }
                }
            }
        }
    }
}
