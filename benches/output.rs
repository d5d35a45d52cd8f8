//! Event output benchmarks: generated sshd-heavy syslog, parsed once, written through an
//! `Output` to a file in a temporary directory, as the full ECS line ("parse -> JSON lines
//! file") and as sshd failures projected to user and source address ("keep only sshd failures
//! with user and source IP"). Each iteration writes every event and flushes, as the daemon
//! does at the end of a batch.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use logwarden::event::Event;
use logwarden::output::{Output, OutputConfig};

const LINES: u64 = 100_000;

fn syslog_events() -> Vec<Event> {
    logwarden::generate::parsed_events(LINES, 42)
}

/// A file output at `path`; rotation at 64 MiB keeping one old file bounds the disk used
/// however many iterations criterion runs (and puts a rotation in the measurement now and then,
/// as in production).
fn file_output(path: &std::path::Path, extra: &str) -> Output {
    let yaml =
        format!("type: file\npath: {}\nmax_bytes: 67108864\nmax_files: 1\n{extra}", path.display());
    let cfg: OutputConfig = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
    Output::build("bench", &cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn run(out: &mut Output, events: &[Event]) -> u64 {
    for e in events {
        let _ = out.write(e);
    }
    let _ = out.flush();
    out.stats().written
}

fn bench(c: &mut Criterion) {
    let events = syslog_events();
    let n = events.len() as u64;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    let mut g = c.benchmark_group("output");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));

    let mut full = file_output(&dir.path().join("events.jsonl"), "");
    g.bench_function("file_full_ecs", |b| b.iter(|| run(&mut full, &events)));

    let mut ssh = file_output(
        &dir.path().join("ssh-failures.jsonl"),
        "where:\n  failed: {event.dataset: sshd, event.outcome: failure}\n  condition: failed\n\
         fields: [user.name, source.ip]\n",
    );
    g.bench_function("file_where_sshd_failures_fields", |b| b.iter(|| run(&mut ssh, &events)));
    g.finish();

    let s = ssh.stats();
    eprintln!(
        "where+fields kept {} of {} events per pass ({} bytes per kept line)",
        s.written * n / (s.written + s.filtered_out).max(1),
        n,
        s.bytes / s.written.max(1)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
