//! Newline framing: never fails, one frame per line, and the same frames however the bytes are
//! split across reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::parse::frame::{Frame, NewlineFramer};
use logwarden_fuzz::{FrameInput, split_invariant};

fuzz_target!(|data: &[u8]| {
    let Some(FrameInput { max, cut, stream }) = FrameInput::new(data) else {
        return;
    };
    let frames = split_invariant(|| NewlineFramer::new(max), stream, cut);

    // One frame per line: every newline ends one, and a final line without one is still a
    // record (loghub's files end that way).
    let newlines = stream.iter().filter(|&&b| b == b'\n').count();
    let lines = newlines + usize::from(stream.last().is_some_and(|&b| b != b'\n'));
    assert_eq!(frames.len(), lines, "frames {frames:?}");

    for f in &frames {
        match f {
            Frame::Record(r) => {
                assert!(r.len() <= max, "record over the limit {max}: {f:?}");
                assert!(!r.contains(&b'\n'), "record holds a newline: {f:?}");
            }
            Frame::TooLong { head, len } => {
                assert!(*len > max && head.len() == max, "bad TooLong for limit {max}: {f:?}");
            }
            Frame::Malformed { .. } => panic!("the newline framer has no malformed frames: {f:?}"),
        }
    }
});
