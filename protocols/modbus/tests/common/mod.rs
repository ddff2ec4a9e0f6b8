//! What the fuzz targets share: a read request made from two input bytes.

use shopfloor_modbus::Area;
use shopfloor_modbus::plan::ReadRequest;

/// A read of 1 to 125 registers or bits of the area `area_byte` picks, from address 0.
pub fn request(area_byte: u8, count_byte: u8) -> ReadRequest {
    let area = [Area::Holding, Area::Input, Area::Coil, Area::Discrete][usize::from(area_byte % 4)];
    ReadRequest {
        area,
        start: 0,
        count: u16::from(count_byte % 125) + 1,
        slots: Vec::new(),
    }
}
