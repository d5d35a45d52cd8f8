//! The file tail's read loop: a generated sshd-heavy syslog file of 200,000 lines read from
//! its beginning through `Tail::run` (polling, framing, batching, checkpoints), the batches
//! taken as the parse stage takes them. One line in 1,000 is over `max_line_bytes`, so the
//! set-aside path runs too.

use std::collections::HashMap;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::{mpsc, watch};

use logwarden::source::tail::{ReadFrom, Tail, TailConfig};

const LINES: u64 = 200_000;
/// Every this many lines, one over the limit.
const LONG_EVERY: u64 = 1000;
const MAX_LINE: usize = 4096;

fn corpus(path: &std::path::Path) -> u64 {
    let mut buf = Vec::with_capacity(LINES as usize * 130);
    logwarden::generate::write_syslog(&mut buf, LINES, 42).unwrap_or_default();
    let mut out = Vec::with_capacity(buf.len() + (LINES / LONG_EVERY) as usize * (MAX_LINE + 2));
    let mut kept = 0;
    for (i, line) in buf.split_inclusive(|&b| b == b'\n').enumerate() {
        out.extend_from_slice(line);
        kept += 1;
        if i as u64 % LONG_EVERY == LONG_EVERY - 1 {
            out.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
            out.push(b'\n');
        }
    }
    std::fs::File::create(path).and_then(|mut f| f.write_all(&out)).unwrap_or_default();
    kept
}

fn bench(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let log = dir.path().join("auth.log");
    let lines = corpus(&log);
    let cfg = TailConfig {
        paths: vec![log.to_string_lossy().into_owned()],
        exclude: Vec::new(),
        read_from: ReadFrom::Beginning,
        poll_interval: Some("10ms".into()),
        max_line_bytes: Some(MAX_LINE),
        format: None,
        max_silence: None,
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
    else {
        return;
    };
    let mut g = c.benchmark_group("tail");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines));
    g.bench_function("read_file_from_beginning", |b| {
        b.iter(|| {
            rt.block_on(async {
                let Ok(tail) = Tail::new("bench", &cfg, HashMap::new()) else { return };
                let (tx, mut rx) = mpsc::channel(4);
                let (stop, shutdown) = watch::channel(false);
                let task = tokio::spawn(tail.run(tx, shutdown));
                let mut got = 0u64;
                while got < lines {
                    match rx.recv().await {
                        Some(batch) => got += batch.records.len() as u64,
                        None => break,
                    }
                }
                stop.send_replace(true);
                let _ = task.await;
                assert_eq!(got, lines);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
