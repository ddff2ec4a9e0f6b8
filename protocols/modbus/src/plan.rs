//! The read planner: a machine's tags merged into as few read requests as the protocol allows.
//!
//! Per area, tags are sorted by address and merged greedily while the request stays within the
//! protocol's limit (125 registers, 2000 bits) and the hole between two tags is small: reading
//! a few unused registers is cheaper than another round trip, but large holes often hold
//! addresses a device refuses with an exception. Pure: no I/O.

use crate::register::{Area, TagSpec};
use std::fmt;

/// Most registers one read may ask for (Modbus application protocol, functions 0x03/0x04).
pub const MAX_REGISTERS: u16 = 125;
/// Most bits one read may ask for (functions 0x01/0x02).
pub const MAX_BITS: u16 = 2000;

/// Limits of the planner.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// Registers per request, at most [`MAX_REGISTERS`].
    pub max_registers: u16,
    /// Bits per request, at most [`MAX_BITS`].
    pub max_bits: u16,
    /// Unused registers a request may span to join two tags.
    pub max_register_gap: u16,
    /// Unused bits a request may span to join two tags.
    pub max_bit_gap: u16,
}

impl Default for PlanLimits {
    fn default() -> PlanLimits {
        PlanLimits {
            max_registers: MAX_REGISTERS,
            max_bits: MAX_BITS,
            max_register_gap: 10,
            max_bit_gap: 100,
        }
    }
}

/// Where one tag's value sits inside a request's reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The tag's index in the machine's tag list.
    pub tag: usize,
    /// Offset of its first register or bit from the request's start.
    pub offset: u16,
    /// Registers or bits it spans.
    pub width: u16,
}

/// One read request of a poll cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// The area read.
    pub area: Area,
    /// First address.
    pub start: u16,
    /// Registers or bits.
    pub count: u16,
    /// The tags answered by this request.
    pub slots: Vec<Slot>,
}

impl fmt::Display for ReadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.area.is_bits() {
            "bits"
        } else {
            "registers"
        };
        let end = u32::from(self.start) + u32::from(self.count) - 1;
        write!(
            f,
            "{:<8} {:>5}..={:<5} {:>4} {unit:<9} {} tag{}",
            self.area,
            self.start,
            end,
            self.count,
            self.slots.len(),
            if self.slots.len() == 1 { "" } else { "s" }
        )
    }
}

/// Plans the reads for `tags` (in machine order). Each tag's width must fit a single request;
/// the configuration checks that before planning.
pub fn plan(tags: &[TagSpec], limits: PlanLimits) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..tags.len()).collect();
    order.sort_by_key(|&i| (tags[i].area, tags[i].address, tags[i].width()));
    let mut out: Vec<ReadRequest> = Vec::new();
    for i in order {
        let t = &tags[i];
        let (max, gap) = if t.area.is_bits() {
            (limits.max_bits, limits.max_bit_gap)
        } else {
            (limits.max_registers, limits.max_register_gap)
        };
        let start = u32::from(t.address);
        let end = start + u32::from(t.width());
        if let Some(r) = out.last_mut().filter(|r| r.area == t.area) {
            let r_start = u32::from(r.start);
            let r_end = r_start + u32::from(r.count);
            let fits = end.max(r_end) - r_start <= u32::from(max);
            let near = start <= r_end + u32::from(gap);
            if fits && near {
                r.count = (end.max(r_end) - r_start) as u16;
                r.slots.push(Slot {
                    tag: i,
                    offset: (start - r_start) as u16,
                    width: t.width(),
                });
                continue;
            }
        }
        out.push(ReadRequest {
            area: t.area,
            start: t.address,
            count: t.width(),
            slots: vec![Slot {
                tag: i,
                offset: 0,
                width: t.width(),
            }],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::DataType;
    use proptest::prelude::*;

    fn reg(address: u16, t: DataType) -> TagSpec {
        TagSpec::new(Area::Holding, address, t)
    }

    fn spans(p: &[ReadRequest]) -> Vec<(Area, u16, u16)> {
        p.iter().map(|r| (r.area, r.start, r.count)).collect()
    }

    #[test]
    fn neighbours_merge_into_one_request() {
        let tags = [
            reg(0, DataType::F32),
            reg(2, DataType::U16),
            reg(3, DataType::U64),
        ];
        let p = plan(&tags, PlanLimits::default());
        assert_eq!(spans(&p), vec![(Area::Holding, 0, 7)]);
        assert_eq!(
            p[0].slots[2],
            Slot {
                tag: 2,
                offset: 3,
                width: 4
            }
        );
    }

    #[test]
    fn small_gaps_are_read_through_and_large_gaps_split() {
        let tags = [
            reg(0, DataType::U16),
            reg(11, DataType::U16),
            reg(40, DataType::U16),
        ];
        let p = plan(&tags, PlanLimits::default());
        assert_eq!(
            spans(&p),
            vec![(Area::Holding, 0, 12), (Area::Holding, 40, 1)]
        );
    }

    #[test]
    fn requests_stay_within_125_registers() {
        let tags: Vec<TagSpec> = (0..100).map(|i| reg(i * 2, DataType::F32)).collect();
        let p = plan(&tags, PlanLimits::default());
        assert_eq!(
            spans(&p),
            vec![(Area::Holding, 0, 124), (Area::Holding, 124, 76)]
        );
        let mut s = reg(0, DataType::String);
        s.length = 125;
        let p = plan(&[s, reg(125, DataType::U16)], PlanLimits::default());
        assert_eq!(
            spans(&p),
            vec![(Area::Holding, 0, 125), (Area::Holding, 125, 1)]
        );
    }

    #[test]
    fn bits_merge_up_to_2000() {
        let tags: Vec<TagSpec> = (0..2500)
            .map(|i| TagSpec::new(Area::Coil, i, DataType::Bool))
            .collect();
        let p = plan(&tags, PlanLimits::default());
        assert_eq!(
            spans(&p),
            vec![(Area::Coil, 0, 2000), (Area::Coil, 2000, 500)]
        );
    }

    #[test]
    fn areas_are_never_mixed_and_come_out_in_a_fixed_order() {
        let tags = [
            TagSpec::new(Area::Discrete, 0, DataType::Bool),
            reg(0, DataType::U16),
            TagSpec::new(Area::Input, 0, DataType::U16),
            TagSpec::new(Area::Coil, 1, DataType::Bool),
            reg(1, DataType::U16),
        ];
        let p = plan(&tags, PlanLimits::default());
        assert_eq!(
            spans(&p),
            vec![
                (Area::Holding, 0, 2),
                (Area::Input, 0, 1),
                (Area::Coil, 1, 1),
                (Area::Discrete, 0, 1)
            ]
        );
    }

    #[test]
    fn bits_of_one_register_share_it() {
        let mut a = reg(10, DataType::Bool);
        a.bit = Some(0);
        let mut b = reg(10, DataType::Bool);
        b.bit = Some(15);
        let p = plan(&[a, b], PlanLimits::default());
        assert_eq!(spans(&p), vec![(Area::Holding, 10, 1)]);
        assert_eq!(p[0].slots.len(), 2);
    }

    #[test]
    fn the_top_of_the_address_space_is_reachable() {
        let p = plan(&[reg(65532, DataType::U64)], PlanLimits::default());
        assert_eq!(spans(&p), vec![(Area::Holding, 65532, 4)]);
    }

    fn any_tag() -> impl Strategy<Value = TagSpec> {
        (0u16..4, 0u16..3000, 0usize..4, 1u16..20).prop_map(|(a, addr, t, len)| {
            let area = [Area::Holding, Area::Input, Area::Coil, Area::Discrete][usize::from(a)];
            let types = [
                DataType::U16,
                DataType::F32,
                DataType::F64,
                DataType::String,
            ];
            let mut s = if area.is_bits() {
                TagSpec::new(area, addr, DataType::Bool)
            } else {
                TagSpec::new(area, addr, types[t])
            };
            s.length = len;
            s
        })
    }

    proptest! {
        /// Every tag is in exactly one request, inside it, and no request breaks the limits.
        #[test]
        fn every_tag_is_covered_once_within_limits(tags in proptest::collection::vec(any_tag(), 0..80)) {
            let p = plan(&tags, PlanLimits::default());
            let mut seen = vec![0; tags.len()];
            for r in &p {
                let max = if r.area.is_bits() { MAX_BITS } else { MAX_REGISTERS };
                prop_assert!(r.count >= 1 && r.count <= max);
                for s in &r.slots {
                    seen[s.tag] += 1;
                    let t = &tags[s.tag];
                    prop_assert_eq!(t.area, r.area);
                    prop_assert_eq!(u32::from(r.start) + u32::from(s.offset), u32::from(t.address));
                    prop_assert!(s.offset + s.width <= r.count);
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }
}
