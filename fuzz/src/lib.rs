//! Helpers the fuzz targets share: building records, driving a decoder, and the ECS round trip.
//!
//! Every check here panics on failure, because a panic is what libFuzzer reports as a crash.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use logwarden::event::{Event, Sym, Timestamp};
use logwarden::parse::frame::Frame;
use logwarden::source::{Origin, RawRecord};
use tokio_util::codec::Decoder;

/// One record as a source would hand it over, with no receive time so runs are deterministic.
pub fn record(data: &[u8]) -> RawRecord {
    RawRecord {
        bytes: Bytes::copy_from_slice(data),
        origin: Origin { source: Sym::from_static("fuzz"), record: 1, offset: 0 },
        received: None,
    }
}

/// The framing knobs a frame target takes from the front of its input: the decoder's maximum
/// record length (1..=256, small so the over-long paths are reached often), the offset of one
/// read boundary, and the stream itself.
pub struct FrameInput<'a> {
    /// The decoder's record length limit.
    pub max: usize,
    /// Where the two-read delivery cuts the stream (0..=stream.len()).
    pub cut: usize,
    /// The bytes to frame.
    pub stream: &'a [u8],
}

impl<'a> FrameInput<'a> {
    /// Splits the fuzzer's bytes into knobs and stream; None when too short to hold the knobs.
    pub fn new(data: &'a [u8]) -> Option<Self> {
        let (&[m, c0, c1], stream) = data.split_first_chunk::<3>()?;
        let cut = usize::from(u16::from_le_bytes([c0, c1])) % (stream.len() + 1);
        Some(FrameInput { max: usize::from(m) + 1, cut, stream })
    }
}

/// Runs a decoder over `chunks` delivered one read at a time, then EOF, and returns its frames.
///
/// Panics if the decoder returns an error (the contract says it never does), or produces more
/// frames than there are input bytes: every frame consumes at least one byte, so more frames
/// than bytes means a decoder looping without progress, which would otherwise be a hang.
pub fn decode_all<D>(mut decoder: D, chunks: &[&[u8]]) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let push = |f: Option<Frame>, frames: &mut Vec<Frame>| -> bool {
        match f {
            Some(f) => {
                frames.push(f);
                assert!(frames.len() <= total, "more frames than input bytes: {frames:?}");
                true
            }
            None => false,
        }
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let f = decoder.decode(&mut buf);
            let f = f.unwrap_or_else(|e| panic!("decode returned an error: {e}"));
            if !push(f, &mut frames) {
                break;
            }
        }
    }
    loop {
        let f = decoder.decode_eof(&mut buf);
        let f = f.unwrap_or_else(|e| panic!("decode_eof returned an error: {e}"));
        if !push(f, &mut frames) {
            break;
        }
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes unconsumed", buf.len());
    frames
}

/// Feeds `input` to fresh decoders whole, cut in two at `cut`, and one byte per read, and
/// demands the same frames every time (the framers' split-invariance contract). Returns them.
pub fn split_invariant<D>(make: impl Fn() -> D, input: &[u8], cut: usize) -> Vec<Frame>
where
    D: Decoder<Item = Frame, Error = std::io::Error>,
{
    let whole = decode_all(make(), &[input]);
    let (a, b) = input.split_at(cut);
    assert_eq!(decode_all(make(), &[a, b]), whole, "cut at {cut} differs from one read");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_all(make(), &bytes), whole, "one byte per read differs from one read");
    whole
}

/// Known library bugs that [`assert_round_trip`] can be told to look past, named in the
/// comma-separated `LOGWARDEN_FUZZ_TOLERATE` environment variable. Strict by default: a newcomer
/// should see every open bug; the switch only lets a run go on to find the next one.
///
/// - `sd-order`: `Event::from_json` reads `log.syslog.structured_data` through a
///   `serde_json::Map`, which (without serde_json's `preserve_order`) sorts SD-IDs and parameter
///   names, so an RFC 5424 message whose elements are not in sorted order does not come back
///   equal. With this set, the expected event's elements and parameters are sorted (stably)
///   before comparing; lost duplicates and broken JSON still fail.
/// - `ts-min`: a time before 1677-09-21T00:12:44Z saturates: `Timestamp::from_secs_nanos`
///   saturates `secs * 1e9` to `i64::MIN` and then adds the nanoseconds, so every value below
///   `-9_223_372_036_000_000_000` is written with seconds `-9223372037` and read back exactly
///   145224192 ns later (`Timestamp(i64::MIN)` is written `1677-09-21T00:12:43.145224192Z`).
///   With this set, such an expected `@timestamp` or `event.created` is shifted by that much.
/// - `sd-key-escape`: `write_json` writes SD-IDs and SD parameter names as object keys without
///   JSON escaping, so one holding `"`, `\` or a control character makes invalid JSON. With this
///   set, events with such a key are not round-tripped at all.
fn tolerates(bug: &str) -> bool {
    static TOLERATE: OnceLock<Vec<String>> = OnceLock::new();
    TOLERATE
        .get_or_init(|| {
            std::env::var("LOGWARDEN_FUZZ_TOLERATE")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .iter()
        .any(|b| b == bug)
}

/// Demands that `e` survive its ECS JSON form: `from_json(to_json(e)) == e`.
pub fn assert_round_trip(e: &Event) {
    if tolerates("sd-key-escape") && has_unescaped_sd_key(e) {
        return;
    }
    let json = e.to_json();
    let back = match Event::from_json(&json) {
        Ok(back) => back,
        Err(err) => panic!("to_json wrote what from_json rejects ({err}): {json}"),
    };
    let mut expected = std::borrow::Cow::Borrowed(e);
    let sd_unsorted = e.syslog.as_ref().is_some_and(|m| {
        !m.structured_data.is_sorted_by(|a, b| a.0 <= b.0)
            || m.structured_data.iter().any(|(_, p)| !p.is_sorted_by(|a, b| a.0 <= b.0))
    });
    if sd_unsorted && tolerates("sd-order") {
        if let Some(m) = expected.to_mut().syslog.as_mut() {
            m.structured_data.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, params) in &mut m.structured_data {
                params.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
    }
    if tolerates("ts-min") {
        if let Some(t) = saturated_read_back(e.timestamp) {
            expected.to_mut().timestamp = t;
        }
        if let Some(t) = e.created.and_then(saturated_read_back) {
            expected.to_mut().created = Some(t);
        }
    }
    assert_eq!(&back, &*expected, "round trip changed the event; JSON was {json}");
}

/// What a timestamp in the saturated range reads back as (see `ts-min`), or None outside it.
fn saturated_read_back(t: Timestamp) -> Option<Timestamp> {
    (t.0 < -9_223_372_036_000_000_000).then(|| Timestamp(t.0 + 145_224_192))
}

/// Whether an SD-ID or parameter name needs JSON escaping (see `sd-key-escape`).
fn has_unescaped_sd_key(e: &Event) -> bool {
    let needs = |k: &str| k.chars().any(|c| c == '"' || c == '\\' || c < ' ');
    e.syslog.as_ref().is_some_and(|m| {
        m.structured_data.iter().any(|(id, p)| needs(id) || p.iter().any(|(k, _)| needs(k)))
    })
}
