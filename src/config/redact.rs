//! Secrets kept out of config errors: a value that came from `${NAME}` or `${file:PATH}` is
//! shown as that reference, and any URL in a message is shown without its password or query
//! values, so a config error can be pasted into a ticket or a CI log as it is.
//!
//! A substituted value is found in a message as written and as Rust's `{:?}` escapes it
//! (serde quotes the values it rejects that way). Values of [`MIN_WHOLE`] characters or more
//! are replaced wherever they occur; shorter ones only as a whole word, so a port `25` from
//! the environment does not turn every `25` in a message into `${PORT}`; values under
//! [`MIN_SECRET`] characters (`1`, `on`, `yes`) are not secrets and are left alone, since
//! replacing them would garble the message around them.

use std::borrow::Cow;

/// Substituted values shorter than this are not secrets (see the module docs).
pub const MIN_SECRET: usize = 4;
/// Substituted values at least this long are replaced wherever they occur in a message; shorter
/// ones only where they stand as a word of their own.
pub const MIN_WHOLE: usize = 8;
/// What a hidden URL password or query value reads as.
const MASK: &str = "***";

/// The values `${...}` references were replaced with, each with its reference as written.
#[derive(Debug, Default, Clone)]
pub struct Substituted {
    /// (value, `${NAME}`), longest value first once [`Substituted::redact`] runs.
    values: Vec<(String, String)>,
}

impl Substituted {
    /// Remembers that `reference` (`NAME` or `file:PATH`, the inside of `${...}`) stood for
    /// `value`.
    pub fn add(&mut self, reference: &str, value: &str) {
        if value.chars().count() < MIN_SECRET || self.values.iter().any(|(v, _)| v == value) {
            return;
        }
        self.values.push((value.to_owned(), format!("${{{reference}}}")));
        // Longest first: a value that contains another is replaced whole, not in pieces.
        self.values.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    }

    /// `text` with every substituted value replaced by its reference and every URL's password
    /// and query values masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = Cow::Borrowed(text);
        for (value, reference) in &self.values {
            let escaped = format!("{value:?}");
            let escaped = &escaped[1..escaped.len() - 1];
            for form in [value.as_str(), escaped] {
                if out.contains(form) {
                    out = Cow::Owned(replace_value(&out, form, reference));
                }
            }
        }
        redact_urls(&out)
    }
}

/// `text` with `value` replaced by `reference`: anywhere if it is long, else only where it is
/// a word of its own.
fn replace_value(text: &str, value: &str, reference: &str) -> String {
    if value.chars().count() >= MIN_WHOLE {
        return text.replace(value, reference);
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(value) {
        let prev = rest[..at].chars().next_back().or(before);
        let next = rest[at + value.len()..].chars().next();
        out.push_str(&rest[..at]);
        let glued_before = word(prev) && word(value.chars().next());
        let glued_after = word(next) && word(value.chars().next_back());
        let alone = !glued_before && !glued_after;
        out.push_str(if alone { reference } else { value });
        before = value.chars().next_back();
        rest = &rest[at + value.len()..];
    }
    out.push_str(rest);
    out
}

/// `text` with each `scheme://` URL's userinfo password (`user:***@`; a user alone, often a
/// token, becomes `***@`) and query values (`?key=***`) masked.
pub fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_len = rest[..at]
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            .count();
        if scheme_len == 0 {
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
            continue;
        }
        out.push_str(&rest[..at + 3]);
        let url = &rest[at + 3..];
        let end =
            url.find(|c: char| c.is_whitespace() || "`\"'<>".contains(c)).unwrap_or(url.len());
        out.push_str(&redact_url_tail(&url[..end]));
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

/// A URL after its `scheme://`, its secrets masked.
fn redact_url_tail(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, after) = url.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(MASK),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path, query) = match after.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (after, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _value)) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(MASK);
                }
                // A bare `?token` is a value without a name.
                None if !pair.is_empty() => out.push_str(MASK),
                None => {}
            }
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn url_passwords_and_query_values_are_masked() {
        for (given, want) in [
            (
                "url `https://user:hunter2@hooks.example.com/x`",
                "url `https://user:***@hooks.example.com/x`",
            ),
            ("https://tok3n@api.example.com", "https://***@api.example.com"),
            ("ftp://h/p?key=abc&sig=d%3D&flag#frag", "ftp://h/p?key=***&sig=***&***#frag"),
            (
                "string \"smtp://a:b@c:25?x=1\", expected",
                "string \"smtp://a:***@c:25?x=***\", expected",
            ),
            ("nats://n:p@h1:4222, nats://h2", "nats://n:***@h1:4222, nats://h2"),
            ("no url: a://", "no url: a://"),
            ("://x and :// y", "://x and :// y"),
            ("https://ok.example/path only", "https://ok.example/path only"),
        ] {
            assert_eq!(redact_urls(given), want, "{given}");
        }
    }

    #[test]
    fn substituted_values_become_their_references() {
        let mut s = Substituted::default();
        s.add("SLACK_WEBHOOK", "https://hooks.slack.com/services/T0/B0/abcdefsecret");
        s.add("file:token", "s3cr\"et\nline");
        s.add("PORT", "2525");
        s.add("ON", "on");
        let text = s.redact(
            "url `https://hooks.slack.com/services/T0/B0/abcdefsecret`: bad; \
             string \"s3cr\\\"et\\nline\"; port 2525 but not 25250; on",
        );
        assert_eq!(
            text,
            "url `${SLACK_WEBHOOK}`: bad; string \"${file:token}\"; port ${PORT} but not 25250; on"
        );
    }

    fn env_with(secret: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| match name {
            "S" => Some(secret.to_owned()),
            "URL" => Some(format!("gopher://svc:{secret}@h.example/x?token={secret}")),
            _ => None,
        }
    }

    /// Configs that are wrong in a way that makes their error quote the value at fault.
    const BAD: &[&str] = &[
        "sinks:\n  h:\n    type: webhook\n    url: \"${S}\"\n",
        "sinks:\n  h:\n    type: webhook\n    url: \"${URL}\"\n",
        "sinks:\n  h:\n    type: webhook\n    url: \"ftp://u:${S}@h/x\"\n",
        "sinks:\n  h:\n    type: webhook\n    url: \"gopher://h/x?key=${S}\"\n",
        "sinks:\n  h:\n    type: slack\n    webhook_url: ${S}\n",
        "sinks:\n  m:\n    type: email\n    host: h\n    port: ${S}\n    from: a@b.c\n    to: [x@y.z]\n",
        "api: {listen: \"${S}\"}\n",
        "api:\n  listen: ${NOPE:-${S}}\n",
        "routes:\n  - sinks: [x]\n    match: {severity: \"${S}\"}\n",
        "syslog: {timezone: \"${S}\"}\n",
        "${S}: 1\n",
        "sources:\n  t: {type: syslog_tcp, listen: \"${S}\"}\n",
        "delivery: {attempts: 1, base: \"${S}\"}\n",
    ];

    fn error_texts(config: &str, secret: &str) -> Vec<String> {
        let env = env_with(secret);
        match crate::config::load_str(config, Path::new("/etc/lw/lw.yml"), &env) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn each_bad_config_fails_and_names_the_reference_instead() {
        for config in BAD {
            let texts = error_texts(config, "Sup3r-secret.value");
            assert!(!texts.is_empty(), "accepted: {config}");
            let all = texts.join("\n");
            assert!(!all.contains("Sup3r-secret.value"), "{config}\n{all}");
            assert!(all.contains("${S}") || all.contains("${URL}") || all.contains("***"), "{all}");
        }
        // The one from a secret file too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("listen"), "file-held-Secret\n").unwrap();
        let path = dir.path().join("lw.yml");
        let errors =
            crate::config::load_str("api: {listen: \"${file:listen}\"}\n", &path, &|_| None)
                .err()
                .unwrap();
        assert_eq!(
            errors[0].to_string(),
            format!(
                "{}:1: `api.listen`: `${{file:listen}}` is not an address such as 127.0.0.1:9600",
                path.display()
            )
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn secrets_never_appear_in_config_errors(
            secret in "[A-Za-z0-9][A-Za-z0-9 !#$%&()*+,./:;<=>?@\\[\\]^_`{|}~'\"\\\\-]{10,40}",
            which in 0..BAD.len(),
        ) {
            let texts = error_texts(BAD[which], &secret);
            let all = texts.join("\n");
            let escaped = format!("{secret:?}");
            prop_assert!(!all.contains(&secret), "{}\n{}", BAD[which], all);
            prop_assert!(!all.contains(&escaped[1..escaped.len() - 1]), "{}\n{}", BAD[which], all);
        }
    }
}
