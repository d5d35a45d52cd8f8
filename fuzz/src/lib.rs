//! Helpers the fuzz targets share: building records, driving a decoder, and the ECS round trip.
//!
//! Every check here panics on failure, because a panic is what libFuzzer reports as a crash.

use bytes::{Bytes, BytesMut};
use logwarden::event::{Event, Sym};
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

/// Demands that `e` survive its ECS JSON form: `from_json(to_json(e)) == e`.
pub fn assert_round_trip(e: &Event) {
    let json = e.to_json();
    let back = match Event::from_json(&json) {
        Ok(back) => back,
        Err(err) => panic!("to_json wrote what from_json rejects ({err}): {json}"),
    };
    assert_eq!(&back, e, "round trip changed the event; JSON was {json}");
}
