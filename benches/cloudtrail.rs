//! Throughput of CloudTrail ingest: `read_records` framing plus `CloudTrailParser`, over every
//! Invictus record concatenated into one in-memory S3 envelope.
// A bench without its corpus has nothing to measure: failing loudly at setup is the point.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::ops::ControlFlow;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logwarden::event::Sym;
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::source::cloudtrail::read_records;

const INVICTUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/invictus-aws-dataset/CloudTrail");

/// All Invictus records as one `{"Records":[...]}` document, and the record count.
fn envelope() -> (Vec<u8>, u64) {
    let mut paths: Vec<_> = std::fs::read_dir(INVICTUS)
        .expect("corpus directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut records: Vec<Box<serde_json::value::RawValue>> = Vec::new();
    for p in paths {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(rename = "Records")]
            records: Vec<Box<serde_json::value::RawValue>>,
        }
        let text = std::fs::read_to_string(&p).expect("corpus file");
        let env: Envelope = serde_json::from_str(&text).expect("envelope");
        records.extend(env.records);
    }
    let n = records.len() as u64;
    let mut out = b"{\"Records\":[".to_vec();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r.get().as_bytes());
    }
    out.extend_from_slice(b"]}");
    (out, n)
}

fn bench(c: &mut Criterion) {
    let (input, n) = envelope();
    let mut group = c.benchmark_group("cloudtrail");
    group.throughput(Throughput::Elements(n));
    group.bench_function("read_and_parse_invictus", |b| {
        let mut parser = CloudTrailParser::default();
        let mut events = Vec::with_capacity(4096);
        b.iter(|| {
            events.clear();
            let mut failed = 0u32;
            let summary = read_records(&input[..], Sym::from_static("bench"), |rec| {
                failed += u32::from(parser.parse(&rec, &mut events).is_err());
                ControlFlow::Continue(())
            });
            black_box((summary.is_ok(), events.len(), failed))
        });
    });
    group.bench_function("read_only_invictus", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let summary = read_records(&input[..], Sym::from_static("bench"), |rec| {
                bytes += rec.bytes.len();
                ControlFlow::Continue(())
            });
            black_box((summary.is_ok(), bytes))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
