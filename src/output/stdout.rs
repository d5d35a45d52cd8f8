//! `type: stdout`: JSON lines on standard output, the buffer handed over in one write per flush.

use std::io::Write;

use serde::Deserialize;

use super::{OutputError, OutputStats, write_counted};

/// `type: stdout`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutOutputConfig {
    /// Only events matching this detection block (named selections and a `condition`, as in a
    /// rule's `detection:`) are written; the others are counted as filtered out.
    #[serde(default)]
    pub r#where: Option<serde_json::Value>,
    /// Write only these dotted paths, nested by their dots; absent ones are left out. Unset:
    /// the whole ECS event, as `replay --events` writes it.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// Standard output, locked for the length of one write-out so lines of other writers in the
/// process cannot land inside it.
pub(super) struct StdoutTarget {
    output: String,
}

impl StdoutTarget {
    /// Nothing to check: standard output is always there.
    pub(super) fn new(output: &str) -> Self {
        StdoutTarget { output: output.to_owned() }
    }

    /// Writes `buf`. Std's stdout is line-buffered, but a write ending in a newline goes
    /// straight to the descriptor as one call, so the whole buffer is one system call (more
    /// only if the pipe takes it in parts).
    pub(super) fn write_out(
        &mut self,
        buf: &[u8],
        done: &mut usize,
        stats: &mut OutputStats,
    ) -> Result<(), OutputError> {
        let mut out = std::io::stdout().lock();
        write_counted(&mut out, buf, done, stats).and_then(|()| out.flush()).map_err(|source| {
            OutputError::Io {
                output: self.output.clone(),
                op: "write",
                path: "<stdout>".into(),
                source,
            }
        })
    }
}
