//! Rule loading of arbitrary text: never panics; a rule that loads can be indexed, linted,
//! and matched against an event without panicking either. Rule files come from users and
//! from third-party packs (Sigma), so the loader is an input parser like any other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::event::{Event, Outcome};
use logwarden::rule::load::{lint, load_str};
use logwarden::rule::set::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match load_str(text, "fuzz.yml") {
        Ok(rules) => {
            for r in &rules {
                let _ = lint(r);
            }
            let set = RuleSet::new(rules);
            let e = Event {
                dataset: Some("sshd".into()),
                action: Some("ssh_login".into()),
                outcome: Some(Outcome::Failure),
                message: Some("Failed password for root".into()),
                ..Event::default()
            };
            let mut hits = Vec::new();
            set.hits(&e, &mut hits);
        }
        Err(errors) => {
            for e in &errors {
                let _ = (e.to_string(), e.kind());
            }
        }
    }
});
