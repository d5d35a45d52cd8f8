//! Extraction parity with fail2ban's own filter test logs (`sshd`, `pam-generic`, `dropbear`),
//! read in place from Debian's `fail2ban` package: they are GPL, so they are not copied here.
//!
//! Each test log line is preceded by a `# failJSON:` comment with fail2ban's expectation, and
//! `# filterOptions:` comments say which filter modes a block applies to. In `normal` mode (the
//! sshd jail's default) a line fail2ban expects to match is a failure of that host; logwarden
//! counts a line as a failure when the pack's counting rule (`ssh-bruteforce` for sshd and
//! dropbear, `pam-bruteforce` for PAM) matches its event and the event carries that address.
//!
//! Recall: of the failures fail2ban expects, how many logwarden counts with the same address.
//! Precision: of the lines logwarden counts, how many fail2ban expects (with that address).
//! The lines where the two deliberately differ are listed in [`DIFFERENCES`], each with why.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use logwarden::event::{Event, Sym};
use logwarden::parse::Parser;
use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
use logwarden::rule::Rule;
use logwarden::source::{Origin, RawRecord};
use serde_json::Value;

/// Where Debian's `fail2ban` package puts its test logs (`python3 -c 'import fail2ban'` finds
/// the package elsewhere, e.g. from pip).
fn logs_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/lib/python3/dist-packages/fail2ban")];
    if let Ok(out) = std::process::Command::new("python3")
        .args(["-c", "import fail2ban, os; print(os.path.dirname(fail2ban.__file__))"])
        .output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.into_iter().map(|p| p.join("tests/files/logs")).find(|p| p.join("sshd").is_file())
}

/// What fail2ban expects of one line in normal mode.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// A failure of this host (an address or a host name).
    Fail(String),
    /// Not a failure.
    NoFail,
}

/// One test log line with what fail2ban expects of it in normal mode, if the block applies.
#[derive(Debug)]
struct Case {
    file: &'static str,
    number: usize,
    line: String,
    expect: Option<Expect>,
    /// The other modes (ddos, extra, aggressive) in which fail2ban expects a failure of a host.
    other_modes: Option<String>,
}

/// The filter options a block of the test log runs under.
fn options(v: &Value) -> Vec<serde_json::Map<String, Value>> {
    match v {
        Value::Array(a) => a.iter().filter_map(|o| o.as_object().cloned()).collect(),
        Value::Object(o) => vec![o.clone()],
        _ => Vec::new(),
    }
}

/// Evaluates the few Python conditions the test logs use (`name == 'sshd'`,
/// `opts.get('mode') != 'aggressive'`); anything else fails the test so a new form is noticed.
fn condition(expr: &str, filter: &str, opts: &serde_json::Map<String, Value>) -> bool {
    let expr = expr.trim();
    let mode = opts.get("mode").and_then(Value::as_str).unwrap_or("normal");
    let quoted = |s: &str| s.trim().trim_matches('\'').trim_matches('"').to_owned();
    for (op, eq) in [("==", true), ("!=", false)] {
        if let Some((lhs, rhs)) = expr.split_once(op) {
            let value = match lhs.trim() {
                "name" => filter.to_owned(),
                "opts.get('mode')" => mode.to_owned(),
                other => panic!("condition on {other}: {expr}"),
            };
            return (value == quoted(rhs)) == eq;
        }
    }
    panic!("unknown condition: {expr}")
}

fn read_cases(dir: &std::path::Path, file: &'static str, filter: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut opts = vec![serde_json::Map::new()];
    let mut pending: Option<Value> = None;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(j) = line.strip_prefix("# filterOptions:") {
            opts = options(&serde_json::from_str(j.trim()).unwrap_or_else(|e| panic!("{e}: {j}")));
            continue;
        }
        if let Some(j) = line.strip_prefix("# failJSON:") {
            pending = Some(serde_json::from_str(j.trim()).unwrap_or_else(|e| panic!("{e}: {j}")));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some(fj) = pending.take() else { continue };
        let host = fj.get("host").and_then(Value::as_str).unwrap_or("").to_owned();
        let matches = fj.get("match").and_then(Value::as_bool).unwrap_or(false);
        // The expectation in one option set, if that set runs this line.
        let under = |o: &serde_json::Map<String, Value>| -> Option<Expect> {
            if let Some(c) = o.get("test.condition").and_then(Value::as_str)
                && !condition(c, filter, o)
            {
                return None;
            }
            if let Some(c) = fj.get("constraint").and_then(Value::as_str)
                && !condition(c, filter, o)
            {
                return None;
            }
            Some(if matches { Expect::Fail(host.clone()) } else { Expect::NoFail })
        };
        let mode = |o: &serde_json::Map<String, Value>| {
            o.get("mode").and_then(Value::as_str).unwrap_or("normal").to_owned()
        };
        let expect = opts.iter().filter(|o| mode(o) == "normal").find_map(under);
        let other_modes = opts
            .iter()
            .filter(|o| mode(o) != "normal")
            .filter_map(|o| match under(o) {
                Some(Expect::Fail(h)) => Some(h),
                _ => None,
            })
            .next();
        cases.push(Case { file, number: i + 1, line: line.to_owned(), expect, other_modes });
    }
    cases
}

/// The counting rules of the pack whose events these filters' failures correspond to.
fn counting_rules() -> Vec<Rule> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    ["ssh-bruteforce.yml", "pam-bruteforce.yml", "ssh-refused-connect.yml"]
        .iter()
        .flat_map(|f| {
            let p = format!("{dir}/{f}");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
            logwarden::rule::load::load_str(&text, &p).unwrap_or_else(|e| panic!("{p}: {e:?}"))
        })
        .collect()
}

/// The address a counting rule would count the event against, if it counts it at all.
fn counted(rules: &[Rule], e: &Event) -> Option<String> {
    if !rules.iter().any(|r| r.matches(e)) {
        return None;
    }
    e.source_ip.map(|ip| ip.to_string()).or_else(|| e.source_domain.as_deref().map(str::to_owned))
}

/// fail2ban writes some addresses with leading zeros (`192.030.0.6`) or IPv4-mapped.
fn same_host(theirs: &str, ours: &str) -> bool {
    if theirs == ours {
        return true;
    }
    let norm = |s: &str| -> Option<IpAddr> {
        let s = s.strip_prefix("::ffff:").unwrap_or(s);
        if s.contains('.') && !s.contains(':') {
            let octets: Vec<u8> = s.split('.').filter_map(|o| o.parse().ok()).collect();
            return (octets.len() == 4)
                .then(|| IpAddr::from([octets[0], octets[1], octets[2], octets[3]]));
        }
        s.parse().ok()
    };
    norm(theirs).is_some_and(|t| norm(ours) == Some(t))
}

/// Lines where logwarden deliberately differs from fail2ban's normal mode: (file, the line's
/// text, why). The measurement counts them as they fall; the test checks the list is exact.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "sshd",
        "Failed password for invalid user test from 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2",
        "sshd writes no info part after a password failure, so the only reading sshd could have \
         written is the invalid user `test from 127.0.0.1 port 58946 ssh2:` from 10.10.1.2; \
         fail2ban's regex takes the first address",
    ),
    (
        "sshd",
        "Accepted password for known from 192.0.2.114 port 52100 ssh2",
        "fail2ban counts a login accepted after PAM failures for other users as a failure; here \
         the login stays a success and the second user's PAM failure is what counts",
    ),
    (
        "sshd",
        "Accepted password for known from 192.0.2.116 port 52100 ssh2",
        "the same multi-user rule of fail2ban: two PAM failures for root, then a login as \
         another user; a success here",
    ),
    (
        "pam-generic",
        "ruser= rhost=192.0.2.2 user=test rhost=192.0.2.152",
        "for an unknown PAM service ruser and user are both client text, so the line reads as \
         rhost 192.0.2.2 (user `test rhost=192.0.2.152`) or as rhost 192.0.2.152 (ruser \
         ` rhost=192.0.2.2 user=test`): neither is blamed, both go to related.ip",
    ),
    (
        "pam-generic",
        "webmail pop(pam_unix)[4920]: authentication failure",
        "fail2ban dropped the Linux-PAM < 0.99.2 form `prog(pam_unix)`; logwarden reads it (loghub's \
         Linux_2k.log is in it)",
    ),
];

/// Every line parsed in order through one parser (session state spans the file, as fail2ban's
/// multi-line buffer does), with the events each produced.
fn parse_all(cases: &[Case]) -> Vec<Vec<Event>> {
    let mut parser = SyslogParser::new(SyslogOptions { year: Some(2005), ..Default::default() });
    cases
        .iter()
        .map(|c| {
            let rec = RawRecord {
                bytes: bytes::Bytes::copy_from_slice(c.line.as_bytes()),
                origin: Origin {
                    source: Sym::from_static("fail2ban"),
                    record: c.number as u64,
                    offset: 0,
                },
                received: None,
            };
            let mut evs = Vec::new();
            parser.parse(&rec, &mut evs).unwrap_or_else(|e| panic!("{}: {e}", c.line));
            evs
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    expected: usize,
    found: usize,
    marked: usize,
    right: usize,
    misses: Vec<String>,
    false_marks: Vec<String>,
    other_modes: usize,
    other_found: usize,
    other_misses: Vec<String>,
}

#[test]
fn fail2ban_filter_logs_recall_and_precision() {
    let Some(dir) = logs_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "fail2ban's test logs (Debian package fail2ban) are required under CI"
        );
        eprintln!("skipped: fail2ban's test logs are not installed (apt-get install fail2ban)");
        return;
    };
    let rules = counting_rules();
    let mut total = Tally::default();
    let mut per_file = BTreeMap::new();
    for (file, filter) in
        [("sshd", "sshd"), ("pam-generic", "pam-generic"), ("dropbear", "dropbear")]
    {
        let cases = read_cases(&dir, file, filter);
        let events = parse_all(&cases);
        let mut t = Tally::default();
        for (c, evs) in cases.iter().zip(&events) {
            // The ddos, extra and aggressive shapes get actions of their own (rules count them
            // apart from password failures): each must at least be recognized, with its host.
            if let Some(h) = &c.other_modes
                && c.expect != Some(Expect::Fail(h.clone()))
            {
                let known = evs.iter().any(|e| {
                    e.action.is_some()
                        && e.dataset.as_deref() != Some("syslog")
                        && (h.is_empty()
                            || e.source_ip.is_some_and(|ip| same_host(h, &ip.to_string())))
                });
                t.other_modes += 1;
                if known {
                    t.other_found += 1;
                } else {
                    t.other_misses.push(format!("{}:{}: {}", c.file, c.number, c.line));
                }
            }
            let ours: Vec<String> = evs.iter().filter_map(|e| counted(&rules, e)).collect();
            let label = format!("{}:{}: {}", c.file, c.number, c.line);
            match &c.expect {
                Some(Expect::Fail(h)) => {
                    t.expected += 1;
                    // No host in fail2ban's expectation: it comes from an earlier line.
                    if ours.iter().any(|o| h.is_empty() || same_host(h, o)) {
                        t.found += 1;
                    } else {
                        t.misses.push(format!("{label}\n    want {h}, got {ours:?}"));
                    }
                }
                Some(Expect::NoFail) | None => {}
            }
            if c.expect.is_some() {
                for o in &ours {
                    t.marked += 1;
                    match &c.expect {
                        Some(Expect::Fail(h)) if h.is_empty() || same_host(h, o) => t.right += 1,
                        _ => t.false_marks.push(format!("{label}\n    counted {o}")),
                    }
                }
            }
        }
        total.expected += t.expected;
        total.found += t.found;
        total.marked += t.marked;
        total.right += t.right;
        total.other_modes += t.other_modes;
        total.other_found += t.other_found;
        total.other_misses.extend(t.other_misses.iter().cloned());
        total.misses.extend(t.misses.iter().cloned());
        total.false_marks.extend(t.false_marks.iter().cloned());
        per_file.insert(file, (t.expected, t.found, t.marked, t.right));
    }
    let recall = total.found as f64 / total.expected as f64;
    let precision = total.right as f64 / total.marked as f64;
    eprintln!(
        "fail2ban parity (normal mode): recall {}/{} = {recall:.3}, precision {}/{} = {precision:.3}",
        total.found, total.expected, total.right, total.marked
    );
    for (f, (e, fo, m, r)) in &per_file {
        eprintln!("  {f}: expected {e}, found {fo}; counted {m}, right {r}");
    }
    eprintln!(
        "ddos/extra/aggressive shapes recognized with their host: {}/{}",
        total.other_found, total.other_modes
    );
    for m in &total.misses {
        eprintln!("MISS {m}");
    }
    for m in &total.other_misses {
        eprintln!("UNKNOWN {m}");
    }
    for m in &total.false_marks {
        eprintln!("FALSE {m}");
    }
    let listed = |l: &str| DIFFERENCES.iter().any(|(_, text, _)| l.contains(text));
    let unlisted: Vec<&String> =
        total.misses.iter().chain(&total.false_marks).filter(|l| !listed(l)).collect();
    assert!(unlisted.is_empty(), "differences not listed in DIFFERENCES: {unlisted:#?}");
    let all: Vec<&String> = total.misses.iter().chain(&total.false_marks).collect();
    for (file, text, _) in DIFFERENCES {
        assert!(
            all.iter().any(|l| l.starts_with(file) && l.contains(text)),
            "listed difference no longer occurs (remove it): {text}"
        );
    }
    assert!(total.other_misses.is_empty(), "shapes of other modes not recognized");
    assert!(recall >= 0.95, "recall {recall:.3}");
    assert!(precision >= 0.97, "precision {precision:.3}");
}
