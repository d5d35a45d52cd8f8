//! Octet-counted framing (RFC 6587): never fails, never invents bytes, and the same frames
//! however the bytes are split across reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::parse::frame::{Frame, OctetCountingFramer};
use logwarden_fuzz::{FrameInput, split_invariant};

fuzz_target!(|data: &[u8]| {
    let Some(FrameInput { max, cut, stream }) = FrameInput::new(data) else {
        return;
    };
    let frames = split_invariant(|| OctetCountingFramer::new(max), stream, cut);

    // Frames account for input bytes (headers and separators not counted), so their lengths
    // can never add up to more than arrived.
    let mut accounted = 0usize;
    for f in &frames {
        match f {
            Frame::Record(r) => {
                assert!(!r.is_empty() && r.len() <= max, "bad record for limit {max}: {f:?}");
                accounted += r.len();
            }
            Frame::TooLong { head, len } => {
                // Emitted only once the whole body has gone by, so the head is full.
                assert!(*len > max && head.len() == max, "bad TooLong for limit {max}: {f:?}");
                accounted += len;
            }
            Frame::Malformed { head, len } => {
                assert!(head.len() <= *len, "head longer than the skipped bytes: {f:?}");
                accounted += len;
            }
        }
    }
    assert!(accounted <= stream.len(), "frames account for {accounted} of {} bytes", stream.len());
});
