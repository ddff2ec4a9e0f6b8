//! The register map of a Modbus tag.

use serde::Deserialize;
use std::fmt;

/// The four Modbus data areas.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// Holding registers (function 0x03), 16 bits each.
    Holding,
    /// Input registers (function 0x04), 16 bits each.
    Input,
    /// Coils (function 0x01), one bit each.
    Coil,
    /// Discrete inputs (function 0x02), one bit each.
    Discrete,
}

impl Area {
    /// True for coils and discrete inputs.
    pub fn is_bits(self) -> bool {
        matches!(self, Area::Coil | Area::Discrete)
    }

    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Holding => "holding",
            Area::Input => "input",
            Area::Coil => "coil",
            Area::Discrete => "discrete",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How the registers of a tag are read as a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// A coil, a discrete input, or one bit (or the whole) of a register.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Four registers, unsigned.
    U64,
    /// Four registers, two's complement.
    I64,
    /// Two registers, IEEE 754 single precision.
    F32,
    /// Four registers, IEEE 754 double precision.
    F64,
    /// `length` registers of ASCII, two characters each.
    String,
}

impl DataType {
    /// Registers a value of this type spans; `None` for strings (their `length` says).
    pub fn registers(self) -> Option<u16> {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => Some(1),
            DataType::U32 | DataType::I32 | DataType::F32 => Some(2),
            DataType::U64 | DataType::I64 | DataType::F64 => Some(4),
            DataType::String => None,
        }
    }

    /// True for the types that take `scale` and `offset`.
    pub fn is_number(self) -> bool {
        !matches!(self, DataType::Bool | DataType::String)
    }

    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Byte order of a multi-register value, named by where the bytes `A B C D` of a big-endian
/// 32-bit value end up on the wire. For N registers, take the 2N bytes as they arrive, each
/// register high byte first; the rule applies to any N.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum WordOrder {
    /// Big-endian: the bytes are the value as they arrive (default).
    #[default]
    ABCD,
    /// Registers in reverse order, bytes inside each register kept ("word swap").
    CDAB,
    /// Registers in order, the two bytes of each register swapped ("byte swap").
    BADC,
    /// All bytes reversed: little-endian.
    DCBA,
}

impl WordOrder {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::ABCD => "ABCD",
            WordOrder::CDAB => "CDAB",
            WordOrder::BADC => "BADC",
            WordOrder::DCBA => "DCBA",
        }
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where and how one tag is read. Built by the configuration after validation, so its fields
/// are consistent: `bit` only for a bool on a register area, `length` only for strings.
#[derive(Clone, Debug, PartialEq)]
pub struct TagSpec {
    /// The data area.
    pub area: Area,
    /// 0-based protocol address of the first register or bit.
    pub address: u16,
    /// How the registers read as a value.
    pub data_type: DataType,
    /// Byte order of multi-register values and strings.
    pub order: WordOrder,
    /// For a bool on a register area: which bit (0 = least significant); `None` = the whole
    /// register is nonzero.
    pub bit: Option<u8>,
    /// For strings: the number of registers.
    pub length: u16,
    /// `value = raw * scale + offset`, numbers only.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
}

impl TagSpec {
    /// A tag of `data_type` at `area`/`address` with default order, no bit, no scaling.
    pub fn new(area: Area, address: u16, data_type: DataType) -> TagSpec {
        TagSpec {
            area,
            address,
            data_type,
            order: WordOrder::ABCD,
            bit: None,
            length: data_type.registers().unwrap_or(1),
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// Registers (or bits, on a bit area) this tag spans.
    pub fn width(&self) -> u16 {
        if self.area.is_bits() {
            1
        } else {
            self.data_type.registers().unwrap_or(self.length)
        }
    }

    /// True when scale or offset change the raw value.
    pub fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }
}
