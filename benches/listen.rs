//! Listeners' per-request and per-connection costs: an intake request (body read piece by
//! piece under the byte budget, gunzipped when compressed, split into records and committed
//! by a pipeline that acknowledges at once), and the connection table's bookkeeping (a sign
//! of life per read, an admission at the cap that closes the longest-idle connection).
// A bench that cannot set up should stop loudly, not measure something else.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use logwarden::source::conns::{ConnCounters, ConnTable};
use logwarden::source::intake::{DEFAULT_MAX_BODY_BYTES, router_with_budget};
use logwarden::source::{Batch, SourceCounters};
use tower::ServiceExt;

/// 4 MiB of syslog lines, about what a busy forwarder sends in one request.
fn body() -> Vec<u8> {
    let mut out = Vec::with_capacity(4 << 20);
    let mut i = 0u64;
    while out.len() < 4 << 20 {
        out.extend_from_slice(
            format!(
                "<38>Dec 10 06:55:46 web-{} sshd[4242]: Failed password for root from 203.0.113.{} port {} ssh2\n",
                i % 50,
                i % 250,
                40000 + i % 20000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

fn intake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(64);
    // The pipeline: commits every batch as it takes it.
    rt.spawn(async move {
        while let Some(mut b) = rx.recv().await {
            if let Some(done) = b.done.take() {
                let _ = done.send(());
            }
        }
    });
    let app = router_with_budget(
        "bench",
        tx,
        None,
        Arc::new(SourceCounters::default()),
        DEFAULT_MAX_BODY_BYTES,
        4 * DEFAULT_MAX_BODY_BYTES,
    );
    let plain = bytes::Bytes::from(body());
    let zipped = bytes::Bytes::from(gzip(&plain));
    let mut group = c.benchmark_group("intake");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    for (name, data, encoding) in
        [("plain_4MiB", &plain, None), ("gzip_4MiB", &zipped, Some("gzip"))]
    {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut req = Request::post("/ingest");
                if let Some(e) = encoding {
                    req = req.header("content-encoding", e);
                }
                let req = req.body(Body::from(data.clone())).expect("request");
                let resp = rt.block_on(app.clone().oneshot(req)).expect("infallible");
                assert!(resp.status().is_success(), "{}", resp.status());
                black_box(resp)
            });
        });
    }
    group.finish();
}

fn conns(c: &mut Criterion) {
    let mut group = c.benchmark_group("conns");
    group.throughput(Throughput::Elements(1));
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    let full = || {
        let table = ConnTable::new(1024, 1024, Arc::new(ConnCounters::default()));
        let held: Vec<_> = (0..1024).map(|i| table.admit(ip(i)).expect("room")).collect();
        (table, held)
    };
    let (_table, held) = full();
    group.bench_function("touch", |b| b.iter(|| held[7].activity.touch()));
    // An admission at the cap scans the 1,024 for the longest idle and closes it.
    group.bench_function("admit_at_cap_1024", |b| {
        b.iter_batched(
            full,
            |(table, held)| {
                let slot = table.admit(ip(5000)).expect("an idle one makes room");
                (table, held, slot)
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, intake, conns);
criterion_main!(benches);
