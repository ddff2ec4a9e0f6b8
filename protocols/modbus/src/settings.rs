//! The config keys of a Modbus machine as this crate defines them: the words of its settings
//! ([`Word`] for area, type, order and parity) and every default and range, named once. The
//! gateway's config checker reads the file with these.

use crate::register::{Area, DataType, WordOrder};
use crate::rtu::Parity;
use shopfloor_core::word::Word;
use std::ops::RangeInclusive;
use std::time::Duration;

/// `unit_id` when the file does not say.
pub const DEFAULT_UNIT_ID: u8 = 1;
/// `unit_id` on TCP: any byte (gateways route by it).
pub const TCP_UNITS: RangeInclusive<i64> = 0..=255;
/// `unit_id` on an RTU bus: 0 is broadcast, which no unit answers; 248 and up are reserved.
pub const RTU_UNITS: RangeInclusive<i64> = 1..=247;
/// `poll_interval` when the file does not say.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// `timeout` (of every request) when the file does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// `baud` when the file does not say: the speed the Modbus serial guide names first.
pub const DEFAULT_BAUD: u32 = 19200;
/// Bits per second a serial line may be configured with.
pub const BAUD_RATES: RangeInclusive<i64> = 300..=4_000_000;
/// `parity` when the file does not say (the Modbus default).
pub const DEFAULT_PARITY: Parity = Parity::Even;

impl Word for Area {
    const ALL: &'static [Self] = &[Area::Holding, Area::Input, Area::Coil, Area::Discrete];

    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Word for DataType {
    const ALL: &'static [Self] = &[
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::String,
    ];

    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Word for WordOrder {
    const ALL: &'static [Self] = &[
        WordOrder::ABCD,
        WordOrder::CDAB,
        WordOrder::BADC,
        WordOrder::DCBA,
    ];

    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Word for Parity {
    const ALL: &'static [Self] = &[Parity::Even, Parity::Odd, Parity::None];

    fn word(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_its_value() {
        fn round_trip<T: Word + std::fmt::Debug>() {
            for v in T::ALL {
                assert_eq!(T::from_word(v.word()), Some(*v));
            }
        }
        round_trip::<Area>();
        round_trip::<DataType>();
        round_trip::<WordOrder>();
        round_trip::<Parity>();
        assert_eq!(Area::choices(), "holding, input, coil or discrete");
        assert_eq!(
            DataType::choices(),
            "bool, u16, i16, u32, i32, u64, i64, f32, f64 or string"
        );
        assert_eq!(Parity::choices(), "even, odd or none");
        assert!(!RTU_UNITS.contains(&0) && TCP_UNITS.contains(&0));
    }
}
