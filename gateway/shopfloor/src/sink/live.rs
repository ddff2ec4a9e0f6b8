//! The live sink: the latest sample and a bounded history per tag, for the HTTP API and the
//! dashboard, and a broadcast of every batch for Server-Sent Events.
//!
//! Each batch is encoded to JSON once, here, and shared by every SSE client: the cost of a
//! client is a copy of an `Arc`, not an encoding per sample.

use crate::sink::SinkStats;
use crate::sink::intake::Intake;
use shopfloor_contract::json;
use shopfloor_core::{Catalog, Quality, Sample, SharedCatalog, Value};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// The live store's name as a sink.
pub const NAME: &str = "live";

/// One remembered reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// UTC milliseconds.
    pub timestamp_ms: i64,
    /// The value.
    pub value: Value,
    /// Its quality.
    pub quality: Quality,
}

/// Latest sample and history of one tag.
#[derive(Debug, Default, Clone)]
pub struct TagLive {
    /// The latest reading.
    pub latest: Option<Point>,
    /// Older readings, oldest first, within the history window.
    pub history: VecDeque<Point>,
}

/// Everything the live sink knows, indexed like the catalog.
#[derive(Debug)]
pub struct LiveStore {
    window_ms: i64,
    max_points: usize,
    /// A reading enters the history only this long after the one before it (or when its
    /// quality differs): history holds a fixed resolution however fast the machine is polled.
    spacing_ms: i64,
    machines: Vec<Vec<TagLive>>,
    last_seen: Vec<Option<i64>>,
}

impl LiveStore {
    /// An empty store for `catalog`, keeping `window` of history at a resolution of
    /// `window / max_points`: at most `max_points` points per tag, whatever the poll rate.
    pub fn new(catalog: &Catalog, window: Duration, max_points: usize) -> LiveStore {
        let mut store = LiveStore {
            window_ms: 0,
            max_points: max_points.max(1),
            spacing_ms: 0,
            machines: catalog
                .machines()
                .map(|(_, m)| vec![TagLive::default(); m.tags.len()])
                .collect(),
            last_seen: vec![None; catalog.len()],
        };
        store.set_window(window);
        store
    }

    /// Keeps `window` of history from now on, at the resolution that gives (a reload changed
    /// `[gateway] history`); points beyond a shorter window leave with the next batch.
    pub fn set_window(&mut self, window: Duration) {
        self.window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.spacing_ms = self.window_ms / self.max_points as i64;
    }

    /// Records a batch.
    pub fn record(&mut self, batch: &[Sample]) {
        // Statuses are the status board's; this store keeps readings.
        for s in batch.iter().filter(|s| !s.is_status()) {
            // A recorder's catalog grows while it runs: make room for ids it added. Ids are
            // u16, so this is bounded.
            let (mi, ti) = (s.machine.index(), s.tag.index());
            if self.machines.len() <= mi {
                self.machines.resize_with(mi + 1, Vec::new);
                self.last_seen.resize(mi + 1, None);
            }
            let tags = &mut self.machines[mi];
            if tags.len() <= ti {
                tags.resize_with(ti + 1, TagLive::default);
            }
            let tag = &mut tags[ti];
            let point = Point {
                timestamp_ms: s.timestamp_ms,
                value: s.to_value(),
                quality: s.quality(),
            };
            let due = tag.history.back().is_none_or(|last| {
                s.timestamp_ms - last.timestamp_ms >= self.spacing_ms
                    || last.quality != point.quality
            });
            if due {
                if tag.history.capacity() == 0 {
                    // Exactly what the tag can hold, not the next power of two.
                    tag.history.reserve_exact(self.max_points + 1);
                }
                tag.history.push_back(point.clone());
            }
            let oldest = s.timestamp_ms.saturating_sub(self.window_ms);
            while tag.history.len() > self.max_points
                || tag.history.front().is_some_and(|p| p.timestamp_ms < oldest)
            {
                tag.history.pop_front();
            }
            tag.latest = Some(point);
            if let Some(seen) = self.last_seen.get_mut(s.machine.index())
                && s.quality() != Quality::Bad
            {
                *seen = Some(seen.map_or(s.timestamp_ms, |t| t.max(s.timestamp_ms)));
            }
        }
    }

    /// A tag's live data.
    pub fn tag(&self, machine: usize, tag: usize) -> Option<&TagLive> {
        self.machines.get(machine)?.get(tag)
    }

    /// When a machine last gave a good or uncertain value.
    pub fn last_seen(&self, machine: usize) -> Option<i64> {
        self.last_seen.get(machine).copied().flatten()
    }

    /// The history window, ms.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }
}

/// The JSON array of a batch as `/api/stream` sends it: the MQTT `tag` payload plus `machine`
/// and `tag`.
pub fn stream_event(catalog: &Catalog, batch: &[Sample]) -> String {
    let mut out = Vec::with_capacity(batch.len() * 128);
    out.push(b'[');
    let mut first = true;
    for s in batch.iter().filter(|s| !s.is_status()) {
        let (Some(m), Some(t)) = (catalog.machine(s.machine), catalog.tag(s.machine, s.tag)) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"machine\":");
        json::push_json_str(&mut out, &m.id);
        out.extend_from_slice(b",\"tag\":");
        json::push_json_str(&mut out, &t.name);
        out.push(b',');
        json::tag_fields(&mut out, s, b"");
        if let Some(u) = &t.unit {
            out.extend_from_slice(b",\"unit\":");
            json::push_json_str(&mut out, u);
        }
        out.push(b'}');
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}

/// The live store's sink: what the HTTP server shows, fed like any other sink.
#[derive(Debug)]
pub struct LiveSink {
    /// Names behind the ids, as the catalog grows.
    pub catalog: Arc<SharedCatalog>,
    /// Latest values and history.
    pub store: Arc<RwLock<LiveStore>>,
    /// `/api/stream`'s events.
    pub events: broadcast::Sender<Arc<str>>,
    /// Its counters.
    pub stats: Arc<SinkStats>,
    /// Its intake's bound.
    pub bound: crate::sink::intake::Bound,
}

impl crate::sink::Sink for LiveSink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn bound(&self) -> crate::sink::intake::Bound {
        self.bound
    }

    /// Memory only: nothing to flush, no budget needed.
    fn run(self: Box<Self>, input: Intake, _budget: std::time::Duration) -> crate::sink::SinkTask {
        Box::pin(run(
            self.catalog,
            self.store,
            self.events,
            self.stats,
            input,
        ))
    }
}

/// Runs the live sink until its input closes.
async fn run(
    catalog: Arc<SharedCatalog>,
    store: Arc<RwLock<LiveStore>>,
    events: broadcast::Sender<Arc<str>>,
    stats: Arc<SinkStats>,
    mut input: Intake,
) {
    while let Some(batch) = input.recv().await {
        if let Ok(mut s) = store.write() {
            s.record(&batch);
        }
        // Only encode when someone listens.
        if events.receiver_count() > 0 {
            let _ = events.send(Arc::from(stream_event(&catalog.load(), &batch)));
        }
        stats
            .sent
            .fetch_add(crate::sink::readings(&batch), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopfloor_core::{MachineId, MachineInfo, TagId, TagInfo};

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(MachineInfo {
            id: "cnc-1".into(),
            kind: "cnc".into(),
            protocol: "modbus-tcp".into(),
            tags: vec![TagInfo {
                name: "speed".into(),
                unit: Some("rpm".into()),
            }],
        })
        .unwrap();
        c
    }

    fn s(ts: i64, v: f64) -> Sample {
        Sample::new(
            MachineId(0),
            TagId(0),
            ts,
            ts as u64,
            Value::F64(v),
            Quality::Good,
        )
    }

    #[test]
    fn history_is_bounded_by_window_and_count() {
        // 10 s at a resolution of 2 s.
        let mut st = LiveStore::new(&catalog(), Duration::from_secs(10), 5);
        st.record(&[s(1_000, 1.0), s(4_000, 2.0), s(20_000, 3.0)]);
        let t = st.tag(0, 0).unwrap();
        assert_eq!(t.history.len(), 1, "older than 10 s dropped");
        assert_eq!(t.latest.as_ref().unwrap().value, Value::F64(3.0));
        let many: Vec<Sample> = (0..20).map(|i| s(30_000 + i * 2_000, i as f64)).collect();
        st.record(&many);
        assert_eq!(st.tag(0, 0).unwrap().history.len(), 5);
        assert_eq!(st.last_seen(0), Some(68_000));
    }

    #[test]
    fn a_shorter_window_lets_older_points_go_with_the_next_batch() {
        let mut st = LiveStore::new(&catalog(), Duration::from_secs(100), 100);
        for ts in (0..=100_000).step_by(1_000) {
            st.record(&[s(ts, 1.0)]);
        }
        assert_eq!(st.tag(0, 0).unwrap().history.len(), 100);
        st.set_window(Duration::from_secs(10));
        assert_eq!(st.window_ms(), 10_000);
        st.record(&[s(101_000, 1.0)]);
        let h = &st.tag(0, 0).unwrap().history;
        assert!(h.iter().all(|p| p.timestamp_ms >= 91_000), "{h:?}");
    }

    #[test]
    fn history_keeps_one_reading_per_step_however_fast_the_poll() {
        let mut st = LiveStore::new(&catalog(), Duration::from_secs(10), 10);
        // 10 readings a second for 5 s: one per second is kept, the latest is always there.
        let fast: Vec<Sample> = (0..50).map(|i| s(100_000 + i * 100, i as f64)).collect();
        st.record(&fast);
        let t = st.tag(0, 0).unwrap();
        let kept: Vec<i64> = t.history.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(kept, vec![100_000, 101_000, 102_000, 103_000, 104_000]);
        assert_eq!(t.latest.as_ref().unwrap().timestamp_ms, 104_900);
        assert!(t.history.capacity() <= 16, "{}", t.history.capacity());
    }

    #[test]
    fn a_change_of_quality_enters_the_history_at_once() {
        let mut st = LiveStore::new(&catalog(), Duration::from_secs(10), 10);
        let bad = Sample::bad(MachineId(0), TagId(0), 200_100, 1);
        st.record(&[s(200_000, 1.0), bad, s(200_200, 2.0), s(200_300, 3.0)]);
        let q: Vec<Quality> = st
            .tag(0, 0)
            .unwrap()
            .history
            .iter()
            .map(|p| p.quality)
            .collect();
        assert_eq!(q, vec![Quality::Good, Quality::Bad, Quality::Good]);
    }

    #[test]
    fn stream_events_are_json_arrays_with_names() {
        let c = catalog();
        let e = stream_event(&c, &[s(5, 1.5)]);
        let j: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(
            j,
            serde_json::json!([{"machine": "cnc-1", "tag": "speed", "timestamp_ms": 5,
                "value": 1.5, "quality": "good", "seq": 5, "unit": "rpm"}])
        );
    }
}
