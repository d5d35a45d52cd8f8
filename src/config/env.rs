//! `${NAME}` expansion in `logwarden.yml`, aware of where in the YAML each reference stands.
//!
//! Expansion runs on the text before YAML parsing (so a port or a count can come from the
//! environment and still be a number), but a value is never allowed to change the YAML's
//! structure: inside double quotes it is escaped, inside single quotes its quotes are doubled,
//! and where it is a whole plain scalar that YAML would read differently (` #`, `: `, a
//! leading `*` or quote, a line break) it is written as a double-quoted string. A value that
//! cannot be made safe where it stands is an error that says to quote the reference.
//! References in comments are left alone: a commented-out line may name a variable nobody
//! sets any more.

use std::cell::RefCell;
use std::path::Path;

use super::ConfigError;
use super::redact::Substituted;

/// Where a `${` stands in its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside quotes.
    Plain,
    /// Inside `"..."`.
    Double,
    /// Inside `'...'`.
    Single,
}

/// Replaces `${NAME}`, `${NAME:-default}` (the default may hold references of its own) and
/// `${file:PATH}` (a secret file beside the config, its trailing newline dropped) with their
/// values; `$${` stays a literal `${`.
pub fn expand_env(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    expand_env_recording(text, file, env, &mut Substituted::default())
}

/// [`expand_env`], remembering in `subs` which value each reference stood for, so errors
/// about the expanded text can show the reference instead of the value.
pub fn expand_env_recording(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    subs: &mut Substituted,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let found = RefCell::new(std::mem::take(subs));
    let mut result = Ok(());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let at = Line { file, line: n as u64 + 1, env, subs: &found };
        result = at.expand(line, &mut out);
        if result.is_err() {
            break;
        }
    }
    *subs = found.into_inner();
    result.map(|()| out)
}

/// One line being expanded.
struct Line<'a> {
    file: &'a str,
    line: u64,
    env: &'a dyn Fn(&str) -> Option<String>,
    subs: &'a RefCell<Substituted>,
}

impl Line<'_> {
    fn error(&self, detail: String) -> ConfigError {
        ConfigError::Env { file: self.file.to_owned(), line: self.line, detail }
    }

    fn expand(&self, line: &str, out: &mut String) -> Result<(), ConfigError> {
        let bytes = line.as_bytes();
        let mut ctx = Context::Plain;
        // Flow collections (`[a, b]`, `{k: v}`) end plain scalars at `,]}` too.
        let mut flow = 0usize;
        // Whether a scalar can start here (line start, after `: `, `- `, `[`, `{`, `,`): a
        // quote opens a quoted scalar only there, so the `'` of `it's` stays a character.
        let mut start = true;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match ctx {
                Context::Double => match b {
                    b'\\' if i + 1 < bytes.len() => {
                        out.push_str(&line[i..i + 2]);
                        i += 2;
                        continue;
                    }
                    b'"' => ctx = Context::Plain,
                    _ => {}
                },
                Context::Single => {
                    if b == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            out.push_str("''");
                            i += 2;
                            continue;
                        }
                        ctx = Context::Plain;
                    }
                }
                Context::Plain => {
                    let at_start = start;
                    match b {
                        b'#' if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => {
                            // A comment: copied as written.
                            out.push_str(&line[i..]);
                            return Ok(());
                        }
                        b'"' if at_start => ctx = Context::Double,
                        b'\'' if at_start => ctx = Context::Single,
                        b'[' | b'{' if at_start => flow += 1,
                        b']' | b'}' if flow > 0 => flow -= 1,
                        _ => {}
                    }
                }
            }
            if b == b'$' && bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
                out.push_str("${");
                start = false;
                i += 3;
                continue;
            }
            if b == b'$' && bytes.get(i + 1) == Some(&b'{') {
                let Some(end) = closing_brace(&line[i + 2..]).map(|e| i + 2 + e) else {
                    return Err(self.error("`${` without a closing `}`".into()));
                };
                let inner = &line[i + 2..end];
                let value = self.resolve(inner)?;
                let whole =
                    ctx == Context::Plain && start && ends_plain_scalar(&line[end + 1..], flow > 0);
                self.insert(&value, inner, ctx, whole, flow > 0, out)?;
                start = false;
                i = end + 1;
                continue;
            }
            if ctx == Context::Plain {
                if b == b' ' || b == b'\t' {
                    if i > 0 && matches!(bytes[i - 1], b':' | b'-' | b'?') {
                        start = true;
                    }
                } else {
                    start = matches!(b, b'[' | b'{' | b',');
                }
            } else {
                start = false;
            }
            // Copy one whole UTF-8 character.
            let len = utf8_len(b);
            out.push_str(&line[i..(i + len).min(line.len())]);
            i += len;
        }
        Ok(())
    }

    /// The value of a reference's inside (`NAME`, `NAME:-default`, `file:PATH`).
    fn resolve(&self, inner: &str) -> Result<String, ConfigError> {
        let (name, default) = match inner.split_once(":-") {
            Some((name, d)) => (name, Some(d)),
            None => (inner, None),
        };
        let looked_up = match name.strip_prefix("file:") {
            // `${file:PATH}`: a secret mounted as a file (systemd credentials, Kubernetes and
            // Docker secrets), relative to the config file like every other path in it.
            Some(p) => {
                let path = Path::new(self.file).parent().unwrap_or(Path::new(".")).join(p);
                match std::fs::read_to_string(path) {
                    Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
                    Err(e) if default.is_none() => {
                        return Err(self.error(format!("secret file `{p}`: {e}")));
                    }
                    Err(_) => None,
                }
            }
            None => (self.env)(name),
        };
        // As in the shell, `:-` also replaces a variable that is set but empty.
        match (looked_up, default) {
            (Some(v), Some(d)) if v.is_empty() => self.expand_default(d),
            (Some(v), _) => {
                self.subs.borrow_mut().add(name, &v);
                Ok(v)
            }
            (None, Some(d)) => self.expand_default(d),
            (None, None) => Err(self.error(format!("environment variable `{name}` is not set"))),
        }
    }

    /// A default is itself expanded (`${A:-${B}}`), as written, without YAML context: the
    /// result is placed in the YAML once, by the outer reference.
    fn expand_default(&self, d: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(d.len());
        let mut rest = d;
        while let Some(k) = rest.find("${") {
            if rest[..k].ends_with('$') {
                out.push_str(&rest[..k - 1]);
                out.push_str("${");
                rest = &rest[k + 2..];
                continue;
            }
            out.push_str(&rest[..k]);
            let Some(end) = closing_brace(&rest[k + 2..]).map(|e| k + 2 + e) else {
                return Err(self.error("`${` without a closing `}`".into()));
            };
            out.push_str(&self.resolve(&rest[k + 2..end])?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Writes `value` where the reference stood, escaped for its context.
    fn insert(
        &self,
        value: &str,
        inner: &str,
        ctx: Context,
        whole: bool,
        flow: bool,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        let name = inner.split_once(":-").map_or(inner, |(n, _)| n);
        match ctx {
            Context::Double => {
                for c in value.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
            }
            Context::Single => {
                if value.contains(['\n', '\r']) {
                    return Err(self.error(format!(
                        "environment variable `{name}` spans lines: put `${{{name}}}` in double \
                         quotes"
                    )));
                }
                out.push_str(&value.replace('\'', "''"));
            }
            Context::Plain if plain_safe(value, whole, flow) => out.push_str(value),
            Context::Plain if whole => {
                // Read as a string, never as structure: quoted and escaped.
                out.push('"');
                self.insert(value, inner, Context::Double, false, flow, out)?;
                out.push('"');
            }
            Context::Plain => {
                let detail = if value.contains(['\n', '\r']) {
                    format!("environment variable `{name}` spans lines")
                } else {
                    format!(
                        "the value of `{name}` would change the YAML here (it holds `#`, `: `, \
                         a quote or a bracket): put the whole value in double quotes"
                    )
                };
                return Err(self.error(detail));
            }
        }
        Ok(())
    }
}

/// Whether the rest of the line after a reference ends its plain scalar: nothing, a comment,
/// or (in a flow collection) a `,`, `]` or `}`.
fn ends_plain_scalar(rest: &str, flow: bool) -> bool {
    let trimmed = rest.trim_start_matches([' ', '\t']);
    trimmed.is_empty()
        || trimmed.starts_with(['\n', '\r'])
        || (trimmed.starts_with('#') && trimmed.len() < rest.len())
        || (flow && trimmed.starts_with([',', ']', '}']))
}

/// Whether `value` reads back as itself where a plain scalar stands.
fn plain_safe(value: &str, whole: bool, flow: bool) -> bool {
    if value.contains(['\n', '\r', '\t']) || value.contains(" #") || value.contains(": ") {
        return false;
    }
    if value.ends_with(':') || (flow && value.contains([',', '[', ']', '{', '}'])) {
        return false;
    }
    if whole {
        // Leading and trailing blanks would be trimmed; these first characters start
        // something other than a plain scalar.
        if value != value.trim() {
            return false;
        }
        if value.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`',
        ]) {
            // `-5`, `-1s` are numbers and durations, not sequence entries.
            let dash_number = value.starts_with('-')
                && value[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
            return dash_number;
        }
    }
    true
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// The byte offset of the `}` that closes a `${` whose inside starts `s`, counting nested
/// `{...}` pairs (a default may hold a template such as `{fingerprint}`).
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(k),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK" => Some("http://127.0.0.1:9/hook".into()),
            "TWO" => Some("a\nb".into()),
            "HASH" => Some("pa ss #word".into()),
            "COLON" => Some("a: b".into()),
            "QUOTE" => Some("it's \"x\"".into()),
            "STAR" => Some("*alias".into()),
            "PORT" => Some("2525".into()),
            "B" => Some("bee".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn x(text: &str) -> Result<String, String> {
        expand_env(text, "f.yml", &env).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_escapes_and_comments() {
        assert_eq!(x("a: ${NOPE:-x}\n").as_deref(), Ok("a: x\n"));
        assert_eq!(x("a: $${HOOK}\n").as_deref(), Ok("a: ${HOOK}\n"));
        assert_eq!(x("# ${NOPE}\na: 1\n").as_deref(), Ok("# ${NOPE}\na: 1\n"));
        assert_eq!(
            x("a: ${HOOK}${HOOK:-y}").as_deref(),
            Ok("a: http://127.0.0.1:9/hookhttp://127.0.0.1:9/hook")
        );
        assert_eq!(x("a: ${EMPTY:-d}\n").as_deref(), Ok("a: d\n"));
        assert_eq!(x("a: ${EMPTY}\n").as_deref(), Ok("a: \n"));
    }

    #[test]
    fn a_reference_in_a_trailing_comment_is_not_expanded() {
        assert_eq!(x("a: 1 # was ${GONE}\n").as_deref(), Ok("a: 1 # was ${GONE}\n"));
        assert_eq!(
            x("a: \"x # ${HOOK}\"\n").as_deref(),
            Ok("a: \"x # http://127.0.0.1:9/hook\"\n")
        );
        // `#` glued to text is part of the scalar, not a comment.
        assert_eq!(x("a: x#${PORT}\n").as_deref(), Ok("a: x#2525\n"));
    }

    #[test]
    fn a_nested_default_is_expanded() {
        assert_eq!(x("a: ${NOPE:-${B}}\n").as_deref(), Ok("a: bee\n"));
        assert_eq!(x("a: ${NOPE:-${NADA:-z}}\n").as_deref(), Ok("a: z\n"));
        assert!(x("a: ${NOPE:-${NADA}}\n").unwrap_err().contains("`NADA` is not set"));
    }

    #[test]
    fn values_never_change_the_yaml() {
        // Whole plain scalars that YAML would misread are quoted.
        assert_eq!(x("p: ${HASH}\n").as_deref(), Ok("p: \"pa ss #word\"\n"));
        assert_eq!(x("p: ${COLON}\n").as_deref(), Ok("p: \"a: b\"\n"));
        assert_eq!(x("p: ${STAR}\n").as_deref(), Ok("p: \"*alias\"\n"));
        // Quotes inside a plain scalar are characters: left as they are.
        assert_eq!(x("p: ${QUOTE} # c\n").as_deref(), Ok("p: it's \"x\" # c\n"));
        assert_eq!(x("- ${TWO}\n").as_deref(), Ok("- \"a\\nb\"\n"));
        // Inside quotes they are escaped for those quotes.
        assert_eq!(x("p: \"${QUOTE}\"\n").as_deref(), Ok("p: \"it's \\\"x\\\"\"\n"));
        assert_eq!(x("p: '${QUOTE}'\n").as_deref(), Ok("p: 'it''s \"x\"'\n"));
        assert_eq!(x("p: \"${TWO}\"\n").as_deref(), Ok("p: \"a\\nb\"\n"));
        // Numbers stay numbers, in block and flow style.
        assert_eq!(x("port: ${PORT}\n").as_deref(), Ok("port: 2525\n"));
        assert_eq!(
            x("r: {count: ${PORT}, per: 1s}\n").as_deref(),
            Ok("r: {count: 2525, per: 1s}\n")
        );
        assert_eq!(x("t: [${COLON}]\n").as_deref(), Ok("t: [\"a: b\"]\n"));
        // Part of a plain scalar cannot be quoted: an error says what to do.
        let e = x("p: pre-${HASH}\n").unwrap_err();
        assert!(e.starts_with("f.yml:1: the value of `HASH` would change the YAML"), "{e}");
        let e = x("p: pre-${TWO}\n").unwrap_err();
        assert_eq!(e, "f.yml:1: environment variable `TWO` spans lines");
        let e = x("p: '${TWO}'\n").unwrap_err();
        assert!(e.contains("spans lines: put `${TWO}` in double quotes"), "{e}");
    }

    #[test]
    fn parsed_back_each_value_is_itself() {
        #[derive(serde::Deserialize)]
        struct Doc {
            a: String,
            b: String,
            c: Vec<String>,
            d: String,
        }
        let text = "a: ${HASH}\nb: \"${QUOTE}\"\nc: [${COLON}, '${QUOTE}']\nd: ${TWO} # comment\n";
        let doc: Doc = serde_saphyr::from_str(&x(text).expect("expands")).expect("parses");
        assert_eq!(doc.a, "pa ss #word");
        assert_eq!(doc.b, "it's \"x\"");
        assert_eq!(doc.c, ["a: b", "it's \"x\""]);
        assert_eq!(doc.d, "a\nb");
    }

    #[test]
    fn a_default_with_braces_of_its_own_ends_at_the_balancing_brace() {
        let text = "link: ${LINK:-https://siem.example/alerts/{fingerprint}?r={rule.id}}\n";
        assert_eq!(
            x(text).as_deref(),
            Ok("link: https://siem.example/alerts/{fingerprint}?r={rule.id}\n")
        );
        let text = "link: ${HOOK:-https://siem.example/alerts/{fingerprint}}\n";
        assert_eq!(x(text).as_deref(), Ok("link: http://127.0.0.1:9/hook\n"));
        assert_eq!(x("a: ${NOPE:-{x}\n").unwrap_err(), "f.yml:1: `${` without a closing `}`");
    }

    #[test]
    fn secret_files_are_read_beside_the_config_without_their_newline() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("token"), "t0k\n").expect("write");
        let cfg = dir.path().join("logwarden.yml").display().to_string();
        assert_eq!(expand_env("a: ${file:token}\n", &cfg, &env).expect("ok"), "a: t0k\n");
        let abs = format!("a: ${{file:{}}}\n", dir.path().join("token").display());
        assert_eq!(expand_env(&abs, "f.yml", &env).expect("ok"), "a: t0k\n");
        let e = expand_env("a: ${file:nope}\n", &cfg, &env).expect_err("missing");
        assert!(e.to_string().contains(":1: secret file `nope`: "), "{e}");
        assert_eq!(expand_env("a: ${file:nope:-none}\n", &cfg, &env).expect("ok"), "a: none\n");
    }
}
