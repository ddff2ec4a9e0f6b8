//! `cargo bench --bench line_protocol`: samples encoded to InfluxDB line protocol per second,
//! the gateway's encoder beside the influxdb2 crate's `DataPoint` serialisation in the same run.
//!
//! Input: 100 poll cycles of a CNC machine of the demo hall (24 tags: floats, integers,
//! unsigned counters, bools and two strings), one point per cycle, as the store receives them.
//! Both write into a reused buffer; the peer builds its points from the samples the way a sink
//! using it would (it has no unsigned type: counters go in as i64).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use influxdb2::models::{DataPoint, WriteDataPoint};
use shopfloor_contract::line;
use shopfloor_core::{
    Catalog, MachineId, MachineInfo, Quality, Sample, TagId, TagInfo, Text, Value, ValueRef,
};
use std::hint::black_box;

const CYCLES: usize = 100;

/// A tag's name and its value in cycle `i`.
type TagModel = (&'static str, fn(u64) -> Value);

fn hall() -> (Catalog, Vec<Sample>) {
    let kinds: Vec<TagModel> = vec![
        ("state", |_| Value::U64(2)),
        ("operation", |i| Value::U64(i % 3)),
        ("program_number", |_| Value::U64(2040)),
        ("program_name", |_| Value::Text(Text::from("HSNG-7B"))),
        ("part_count", |i| Value::U64(1000 + i)),
        ("good_count", |i| Value::U64(990 + i)),
        ("scrap_count", |_| Value::U64(10)),
        ("cycle_time", |i| Value::F64(142.0 + i as f64 * 0.01)),
        ("spindle_speed", |i| Value::F64(7478.25 + i as f64)),
        ("spindle_load", |i| Value::U64(60 + i % 20)),
        ("feed_rate", |_| Value::F64(1500.0)),
        ("feed_override", |_| Value::U64(100)),
        ("x_position", |i| Value::F64(428.125 - i as f64 * 0.5)),
        ("y_position", |i| Value::F64(101.5 + i as f64 * 0.25)),
        ("z_position", |_| Value::F64(-2.95)),
        ("active_tool", |_| Value::U64(10)),
        ("tool_wear", |i| Value::U64(i % 100)),
        ("coolant_on", |_| Value::Bool(true)),
        ("door_open", |_| Value::Bool(false)),
        ("alarm_active", |_| Value::Bool(false)),
        ("spindle_running", |_| Value::Bool(true)),
        ("alarm_code", |_| Value::U64(0)),
        ("alarm_text", |_| Value::Text(Text::from(""))),
        ("power", |i| Value::F64(16.7 + (i % 10) as f64 * 0.1)),
    ];
    let mut catalog = Catalog::new();
    catalog
        .add(MachineInfo {
            id: "cnc-1".into(),
            kind: "cnc".into(),
            protocol: "modbus-tcp".into(),
            tags: kinds
                .iter()
                .map(|(n, _)| TagInfo {
                    name: (*n).into(),
                    unit: None,
                })
                .collect(),
        })
        .unwrap();
    let mut samples = Vec::new();
    for c in 0..CYCLES as u64 {
        for (t, (_, value)) in kinds.iter().enumerate() {
            samples.push(Sample::new(
                MachineId(0),
                TagId(t as u16),
                1_795_379_533_423 + c as i64 * 100,
                c,
                value(c),
                Quality::Good,
            ));
        }
    }
    (catalog, samples)
}

fn with_influxdb2(catalog: &Catalog, batch: &[Sample], out: &mut Vec<u8>) {
    for group in batch.chunk_by(|a, b| a.machine == b.machine && a.timestamp_ms == b.timestamp_ms) {
        let m = catalog.machine(group[0].machine).unwrap();
        let mut point = DataPoint::builder("shopfloor")
            .tag("machine", m.id.as_str())
            .tag("kind", m.kind.as_str());
        for s in group {
            let name = m.tags[s.tag.index()].name.as_str();
            point = match s.value() {
                ValueRef::Null => point,
                ValueRef::Bool(b) => point.field(name, b),
                ValueRef::I64(v) => point.field(name, v),
                ValueRef::U64(v) => point.field(name, v as i64),
                ValueRef::F64(v) => point.field(name, v),
                ValueRef::Text(t) => point.field(name, t),
            };
        }
        let point = point.timestamp(group[0].timestamp_ms).build().unwrap();
        point.write_data_point_to(&mut *out).unwrap();
    }
}

fn encode_bench(c: &mut Criterion) {
    let (catalog, batch) = hall();
    let mut g = c.benchmark_group("line_protocol");
    g.throughput(Throughput::Elements(batch.len() as u64));
    let mut text = String::with_capacity(64 * 1024);
    g.bench_function("shopfloor", |b| {
        b.iter(|| {
            text.clear();
            line::encode(&mut text, &catalog, "shopfloor", black_box(&batch));
            black_box(text.len())
        })
    });
    let mut bytes = Vec::with_capacity(64 * 1024);
    g.bench_function("influxdb2", |b| {
        b.iter(|| {
            bytes.clear();
            with_influxdb2(&catalog, black_box(&batch), &mut bytes);
            black_box(bytes.len())
        })
    });
    g.finish();
}

criterion_group!(benches, encode_bench);
criterion_main!(benches);
