//! `where:` filters: a detection block (named selections and a `condition`, exactly what a
//! rule's `detection:` holds) compiled once by the rule loader, then matched per event.
//!
//! Reusing the loader, rather than a second compiler, keeps one meaning for every modifier and
//! condition keyword: a `where:` that works in a rule works here, and fails here the same way.

use serde_json::Value;

use crate::event::Event;
use crate::rule::Rule;
use crate::rule::load::{RuleError, load_str};

use super::OutputError;

/// A compiled `where:` block.
#[derive(Debug)]
pub(crate) struct Where {
    rule: Rule,
}

impl Where {
    /// Compiles `detection` as the detection block of a minimal rule. Errors name the output and
    /// every problem found, without line numbers (they would count lines of the generated
    /// document, not of logwarden.yml).
    pub(crate) fn compile(output: &str, detection: &Value) -> Result<Where, OutputError> {
        let err = |problem: String| OutputError::Where { output: output.to_owned(), problem };
        if !detection.is_object() {
            return Err(err("must be a map of named selections and a `condition`".into()));
        }
        // JSON is YAML (flow style), and every string in it is quoted, so the loader reads back
        // exactly the values the config held: `"042"` stays a string, 42 stays a number.
        let doc = serde_json::json!({
            "id": format!("output-{output}"),
            "title": format!("`where` of output `{output}`"),
            "severity": "info",
            "detection": detection,
        });
        match load_str(&doc.to_string(), "where") {
            Ok(mut rules) => match rules.pop() {
                Some(rule) => Ok(Where { rule }),
                None => Err(err("compiled to nothing".into())),
            },
            Err(errors) => Err(err(errors.iter().map(describe).collect::<Vec<_>>().join("; "))),
        }
    }

    /// Whether the event passes.
    pub(crate) fn matches(&self, e: &Event) -> bool {
        self.rule.matches(e)
    }
}

/// The part of a loader error that means something to the author of `where:`: its key and
/// problem, without the generated document's file name, positions or rule id.
fn describe(e: &RuleError) -> String {
    match e {
        RuleError::Yaml { message, .. } => message.clone(),
        RuleError::Detection { key, detail, .. } if key == "detection" => {
            detail.strip_prefix("detection ").unwrap_or(detail).to_owned()
        }
        RuleError::Detection { key, detail, .. } | RuleError::Invalid { key, detail, .. } => {
            format!("`{key}`: {detail}")
        }
        RuleError::Match { source, .. } => source.to_string(),
        RuleError::Condition { condition, source, .. } => {
            format!("condition `{condition}`: {source}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::{MIX, events};

    fn compile(yaml: &str) -> Result<Where, OutputError> {
        let v: Value = serde_saphyr::from_str(yaml).expect("yaml");
        Where::compile("o", &v)
    }

    #[test]
    fn keeps_only_sshd_failures() {
        let w =
            compile("failed: {event.dataset: sshd, event.outcome: failure}\ncondition: failed\n")
                .expect("compiles");
        let kept: Vec<_> = events(MIX)
            .into_iter()
            .filter(|e| w.matches(e))
            .map(|e| e.user_name.map(|u| u.to_string()))
            .collect();
        assert_eq!(kept, [Some("root".into()), Some("admin".into())]);
    }

    #[test]
    fn modifiers_lists_and_conditions_work_as_in_rules() {
        let w = compile(
            "ssh: {process.name: sshd}\n\
             net: {source.ip|cidr: 203.0.113.0/24}\n\
             root: {user.name: [root, toor]}\n\
             condition: ssh and net and not root\n",
        )
        .expect("compiles");
        let kept: Vec<_> =
            events(MIX).into_iter().filter(|e| w.matches(e)).map(|e| e.process_pid).collect();
        assert_eq!(kept, [Some(44)]);
    }

    #[test]
    fn values_keep_their_types_through_the_generated_document() {
        // A number stays a number, and quotes, backslashes and YAML punctuation in a string
        // survive the round trip through the generated document.
        let pid = compile("p: {process.pid: 42}\ncondition: p\n").expect("compiles");
        assert_eq!(events(MIX).iter().filter(|e| pid.matches(e)).count(), 1);
        let odd = compile(
            "p: {message|contains: \"it's \\\"quoted\\\" \\\\ and: {braced}\"}\ncondition: p\n",
        )
        .expect("compiles");
        assert_eq!(events(MIX).iter().filter(|e| odd.matches(e)).count(), 0);
    }
}
