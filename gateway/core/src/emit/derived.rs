//! Samples a producer computes instead of reading (the KPIs of a machine): the same per-tag
//! `seq` and never-repeating timestamps as a driver's, but no status of their own, since the
//! machine's driver owns its status.

use crate::sample::{MachineId, Quality, Sample, TagId, Value};
use crate::time::Stamps;

/// The computed tags of one machine: tags `first..first + count` of its catalog entry.
#[derive(Debug, Clone)]
pub struct Derived {
    machine: MachineId,
    first: usize,
    seqs: Vec<u64>,
    stamps: Stamps,
}

impl Derived {
    /// Computed tags `first..first + count` of `machine`.
    pub fn new(machine: MachineId, first: usize, count: usize) -> Derived {
        Derived {
            machine,
            first,
            seqs: vec![0; count],
            stamps: Stamps::default(),
        }
    }

    /// The machine the tags are of.
    pub fn machine(&self) -> MachineId {
        self.machine
    }

    /// The catalog index of the first computed tag.
    pub fn first(&self) -> usize {
        self.first
    }

    /// The same computed tags under another machine id and tag offset (the machine restarted
    /// with new settings): each tag continues its `seq`; tags beyond the old count start at 1.
    pub fn moved(&self, machine: MachineId, first: usize, count: usize) -> Derived {
        let mut seqs = self.seqs.clone();
        seqs.resize(count, 0);
        Derived {
            machine,
            first,
            seqs,
            stamps: self.stamps,
        }
    }

    /// The timestamp for values computed at `now`: never the same millisecond twice.
    pub fn stamp(&mut self, now: i64) -> i64 {
        self.stamps.next(now)
    }

    /// Appends a good sample of computed tag `index` (0 for the first) to `out`. An index out
    /// of range is ignored.
    pub fn value(&mut self, out: &mut Vec<Sample>, index: usize, ts: i64, value: Value) {
        let Some(seq) = self.seqs.get_mut(index) else {
            return;
        };
        let Ok(tag) = u16::try_from(self.first + index) else {
            return;
        };
        *seq += 1;
        out.push(Sample::new(
            self.machine,
            TagId(tag),
            ts,
            *seq,
            value,
            Quality::Good,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_tags_count_their_own_seq_after_the_machines_tags() {
        let mut d = Derived::new(MachineId(3), 10, 2);
        let mut out = Vec::new();
        let t1 = d.stamp(1000);
        d.value(&mut out, 0, t1, Value::F64(0.5));
        d.value(&mut out, 1, t1, Value::U64(7));
        d.value(&mut out, 2, t1, Value::U64(7));
        let t2 = d.stamp(1000);
        d.value(&mut out, 0, t2, Value::F64(0.6));
        let got: Vec<(u16, u16, i64, u64)> = out
            .iter()
            .map(|s| (s.machine.0, s.tag.0, s.timestamp_ms, s.seq))
            .collect();
        assert_eq!(got, [(3, 10, 1000, 1), (3, 11, 1000, 1), (3, 10, 1001, 2)]);
    }

    #[test]
    fn moved_tags_continue_their_seq_under_the_new_id_and_offset() {
        let mut d = Derived::new(MachineId(1), 2, 2);
        let mut out = Vec::new();
        d.value(&mut out, 0, 5, Value::U64(1));
        d.value(&mut out, 1, 5, Value::U64(1));
        let mut moved = d.moved(MachineId(4), 3, 3);
        out.clear();
        for i in 0..3 {
            moved.value(&mut out, i, 6, Value::U64(2));
        }
        let got: Vec<(u16, u16, u64)> = out.iter().map(|s| (s.machine.0, s.tag.0, s.seq)).collect();
        assert_eq!(got, [(4, 3, 2), (4, 4, 2), (4, 5, 1)]);
    }
}
