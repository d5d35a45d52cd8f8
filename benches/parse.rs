//! Parse-stage benchmarks over a generated sshd-heavy RFC 3164 corpus: framing, syslog_loose
//! alone, the sshd extractor alone, the full parse + extract + normalize, and JSON writing.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::Decoder;

use logwarden::event::{Event, Sym, Timestamp, write_json};
use logwarden::parse::Parser;
use logwarden::parse::extract::sshd::parse_line;
use logwarden::parse::frame::{Frame, NewlineFramer};
use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
use logwarden::source::{Origin, RawRecord};

const LINES: u64 = 1_000_000;

fn corpus() -> Vec<u8> {
    let mut buf = Vec::with_capacity(LINES as usize * 130);
    logwarden::generate::write_syslog(&mut buf, LINES, 42).unwrap_or_default();
    buf
}

fn frames(data: &[u8]) -> Vec<Bytes> {
    let mut framer = NewlineFramer::default();
    let mut buf = BytesMut::from(data);
    let mut out = Vec::with_capacity(LINES as usize);
    while let Ok(Some(Frame::Record(b))) = framer.decode_eof(&mut buf) {
        out.push(b);
    }
    out
}

fn records(lines: &[Bytes]) -> Vec<RawRecord> {
    let source = Sym::from_static("bench");
    lines
        .iter()
        .enumerate()
        .map(|(i, b)| RawRecord {
            bytes: b.clone(),
            origin: Origin { source: source.clone(), record: i as u64 + 1, offset: 0 },
            received: None,
        })
        .collect()
}

fn opts() -> SyslogOptions {
    SyslogOptions { year: Some(2026), now: Some(Timestamp(0)), ..SyslogOptions::default() }
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let lines = frames(&data);
    let recs = records(&lines);
    let n = lines.len() as u64;
    assert_eq!(n, LINES);

    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));

    g.bench_function("frame_newline", |b| {
        b.iter(|| {
            let mut framer = NewlineFramer::default();
            let mut buf = BytesMut::from(&data[..]);
            let mut count = 0u64;
            while let Ok(Some(_)) = framer.decode_eof(&mut buf) {
                count += 1;
            }
            count
        })
    });

    g.bench_function("syslog_loose_only", |b| {
        b.iter(|| {
            let mut hosts = 0usize;
            for l in &lines {
                let text = std::str::from_utf8(l).unwrap_or("");
                let m = syslog_loose::parse_message_with_year_exact_tz(
                    text,
                    |_| 2026,
                    Some(chrono_tz::Tz::UTC),
                    syslog_loose::Variant::Either,
                );
                hosts += m.map(|m| m.hostname.map_or(0, str::len)).unwrap_or(0);
            }
            hosts
        })
    });

    let sshd_msgs: Vec<&str> = lines
        .iter()
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.contains(" sshd["))
        .filter_map(|l| l.split_once("]: ").map(|(_, m)| m))
        .collect();
    g.throughput(Throughput::Elements(sshd_msgs.len() as u64));
    g.bench_function("sshd_extract_only", |b| {
        b.iter(|| sshd_msgs.iter().filter(|m| parse_line(m).is_some()).count())
    });
    g.throughput(Throughput::Elements(n));

    g.bench_function("syslog_parse_extract_normalize", |b| {
        b.iter(|| {
            let mut p = SyslogParser::new(opts());
            let mut out: Vec<Event> = Vec::with_capacity(1024);
            let mut count = 0usize;
            for r in &recs {
                let _ = p.parse(r, &mut out);
                if out.len() >= 1024 {
                    count += out.len();
                    out.clear();
                }
            }
            count + out.len()
        })
    });

    let mut p = SyslogParser::new(opts());
    let mut events = Vec::with_capacity(recs.len());
    for r in &recs {
        let _ = p.parse(r, &mut events);
    }
    g.bench_function("write_ecs_json", |b| {
        let mut buf = Vec::with_capacity(1 << 21);
        b.iter(|| {
            let mut total = 0usize;
            for e in &events {
                write_json(e, &mut buf);
                buf.push(b'\n');
                if buf.len() > 1 << 20 {
                    total += buf.len();
                    buf.clear();
                }
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
