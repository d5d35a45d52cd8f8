//! Sigma keyword lists: a full-text search of the message and program (or the original record).

use super::text::Text;
use super::{MatchError, RuleValue};
use crate::event::Event;

/// A compiled Sigma `keywords` selection: full-text search of `message`.
#[derive(Clone, Debug)]
pub struct KeywordMatcher {
    words: Box<[Text]>,
    /// Every keyword must occur (`'|all':`), not just one.
    all: bool,
}

impl KeywordMatcher {
    /// Compiles the keywords (any one must occur; wildcards apply inside each).
    pub fn compile(values: &[RuleValue]) -> Result<KeywordMatcher, MatchError> {
        Self::build(values, false, "keywords")
    }

    /// Compiles the keywords of a `'|all':` list: every one must occur.
    pub fn compile_all(values: &[RuleValue]) -> Result<KeywordMatcher, MatchError> {
        Self::build(values, true, "|all")
    }

    fn build(values: &[RuleValue], all: bool, key: &str) -> Result<KeywordMatcher, MatchError> {
        if values.is_empty() {
            return Err(MatchError::Conflicting { key: key.into(), detail: "no values".into() });
        }
        let words = values
            .iter()
            .map(|v| {
                let text = v.text().ok_or_else(|| MatchError::Conflicting {
                    key: key.into(),
                    detail: "`null` is not a keyword".into(),
                })?;
                Text::compile(&text, true, true)
                    .map_err(|source| MatchError::BadRegex { key: key.into(), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(KeywordMatcher { words, all })
    }

    /// Whether any keyword (every keyword, for `'|all':`) occurs, case-insensitively, in
    /// `message` or `process.name` (or, for events without a message, in the original record's
    /// text). Sigma searches the whole log line, and a syslog line's program is part of it:
    /// SigmaHQ's PwnKit rule wants `pkexec` (the program) and a message text together.
    pub fn matches(&self, e: &Event) -> bool {
        let hay = match (&e.message, &e.original) {
            (Some(m), _) => &**m,
            (None, Some(o)) => o.raw(),
            (None, None) => return false,
        };
        let program = e.process_name.as_deref();
        let found = |w: &Text| w.matches(hay) || program.is_some_and(|p| w.matches(p));
        if self.all { self.words.iter().all(found) } else { self.words.iter().any(found) }
    }
}
