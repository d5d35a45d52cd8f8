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

/// Whether `record` is one value by structure alone, as the CloudTrail framer promises (see
/// `logwarden::source::cloudtrail`): an object, array or string that ends exactly at the byte
/// closing it, brackets outside strings matched and nested, every string closed; or a scalar
/// array element, a non-empty run of bytes holding no whitespace, no `,` or `:`, and no
/// bracket or quote. Written apart from the framer, byte by byte and without
/// its tables or `memchr`, so the two can disagree.
pub fn is_one_value_by_structure(record: &[u8]) -> bool {
    let Some(&first) = record.first() else { return false };
    if !matches!(first, b'{' | b'[' | b'"') {
        return !record.iter().any(|b| b" \t\r\n,]}:\"{[".contains(b));
    }
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in record.iter().enumerate() {
        let closed = if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            !in_string && stack.is_empty()
        } else {
            match b {
                b'"' => in_string = true,
                b'{' => stack.push(b'}'),
                b'[' => stack.push(b']'),
                b'}' | b']' => {
                    if stack.pop() != Some(b) {
                        return false;
                    }
                }
                _ => {}
            }
            !in_string && stack.is_empty()
        };
        if closed {
            // The value closed here: it must be the record's last byte.
            return i + 1 == record.len();
        }
    }
    false
}

/// What serde_json makes of `data` as CloudTrail records, when it is valid JSON of the
/// accepted shapes: after an optional UTF-8 byte order mark, one or more arrays or objects;
/// an array's records are its elements; an object's is the object itself, unless it has a key
/// written exactly `"Records"` (no escapes) whose value is an array, when the first such
/// array's elements are. Each record as the exact text it had in `data`. `None` when serde_json
/// rejects `data` or a top-level value is neither an array nor an object.
pub fn json_records(data: &[u8]) -> Option<Vec<String>> {
    use serde_json::value::RawValue;
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_slice(data).into_iter::<Box<RawValue>>() {
        let value = value.ok()?;
        let text = value.get();
        match text.as_bytes().first() {
            Some(b'[') => {
                let elements: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
                out.extend(elements.iter().map(|e| e.get().to_owned()));
            }
            Some(b'{') => {
                let Entries(entries) = serde_json::from_str(text).ok()?;
                let records = entries
                    .iter()
                    .find(|(plain_records, v)| *plain_records && v.get().starts_with('['));
                match records {
                    Some((_, array)) => {
                        let elements: Vec<Box<RawValue>> =
                            serde_json::from_str(array.get()).ok()?;
                        out.extend(elements.iter().map(|e| e.get().to_owned()));
                    }
                    None => out.push(text.to_owned()),
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// An object's entries in order: whether the key is `Records` written without escapes, and
/// the value's text. (A map would keep only the last of two equal keys, and unescape them.)
struct Entries(Vec<(bool, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = m.next_key::<Key>()? {
                    entries.push((key.0, m.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// A key, reduced to whether it is `Records` with no escape in it: serde_json lends the
/// input's own text (`visit_borrowed_str`) only when the key had no escapes.
struct Key(bool);

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key, E> {
                Ok(Key(s == "Records"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Key, E> {
                Ok(Key(false))
            }
        }
        d.deserialize_str(V)
    }
}
