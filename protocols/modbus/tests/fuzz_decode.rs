//! Fuzz target: decoding any registers as any tag never panics, and a reply of the tag's width
//! always decodes. Runs as a test on stable (bolero); `cargo bolero test` fuzzes it.

use shopfloor_modbus::decode::decode_registers;
use shopfloor_modbus::{Area, DataType, TagSpec, WordOrder};

const TYPES: [DataType; 10] = [
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
const ORDERS: [WordOrder; 4] = [
    WordOrder::ABCD,
    WordOrder::CDAB,
    WordOrder::BADC,
    WordOrder::DCBA,
];

#[test]
fn decoding_any_registers_never_panics() {
    bolero::check!()
        .with_type::<(u8, u8, u8, u8, Vec<u16>, f64, f64)>()
        .for_each(|(t, o, bit, len, regs, scale, offset)| {
            let mut spec = TagSpec::new(Area::Holding, 0, TYPES[usize::from(*t) % TYPES.len()]);
            spec.order = ORDERS[usize::from(*o) % ORDERS.len()];
            spec.bit = Some(bit % 16);
            spec.length = u16::from(*len % 125) + 1;
            spec.scale = *scale;
            spec.offset = *offset;
            let result = decode_registers(&spec, regs);
            if regs.len() == usize::from(spec.width()) {
                assert!(result.is_ok());
            } else {
                assert!(result.is_err());
            }
        });
}
