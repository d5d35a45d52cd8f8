//! SigmaHQ's Linux builtin rules (a representative set, unchanged; see
//! `tests/data/sigma-linux/README.md`): they all load from their nested directories, `check`
//! says exactly which can fire on the events logwarden makes from syslog lines, and the sshd,
//! auth and cron ones fire on lines replayed through the real parser.

use std::ffi::OsStr;
use std::path::Path;

use logwarden::rule::load::{load_dir, rule_files};

use crate::cli;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sigma-linux");

/// The two rules that name fields of another log schema: sudo's `USER` (logwarden has it as
/// `user.target.name`) and process-creation fields under `service: sshd`.
const CANNOT_FIRE: &[(&str, &[&str])] = &[
    (
        "99f0342f-c632-46a8-8039-3c6d57733ba2",
        &["Image", "CommandLine", "ParentImage", "ParentCommandLine"],
    ),
    ("7fcc54cb-f27d-4684-84b7-436af096f858", &["USER"]),
];

#[test]
fn every_rule_loads_from_the_nested_directories() {
    let files = rule_files(Path::new(RULES)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(files.len(), 15);
    let rules = load_dir(Path::new(RULES)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rules.len(), 15);
    let mut cannot: Vec<(String, Vec<String>)> = rules
        .iter()
        .filter_map(|r| {
            let reach = r.reach();
            (!reach.can_fire).then(|| (r.id.clone(), reach.missing))
        })
        .collect();
    cannot.sort();
    let mut expected: Vec<(String, Vec<String>)> = CANNOT_FIRE
        .iter()
        .map(|(id, f)| ((*id).to_owned(), f.iter().map(|s| (*s).to_owned()).collect()))
        .collect();
    expected.sort();
    assert_eq!(cannot, expected);
}

#[test]
fn check_warns_about_the_rules_that_cannot_fire_and_passes() {
    let r = cli::logwarden([OsStr::new("check"), OsStr::new("--rules"), OsStr::new(RULES)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("{RULES}: 15 rule files, 15 rules loaded, 2 cannot fire, 0 lint findings\n")
    );
    assert_eq!(
        r.stderr,
        format!(
            "{RULES}/sshd/lnx_sshd_cve_2024_3094.yml:2: warning: rule `99f0342f-c632-46a8-8039-3c6d57733ba2` \
             cannot fire: no event of its logsource (linux/sshd/-) carries `Image`, `CommandLine`, \
             `ParentImage`, `ParentCommandLine`\n\
             {RULES}/sudo/lnx_sudo_cve_2019_14287_user.yml:2: warning: rule `7fcc54cb-f27d-4684-84b7-436af096f858` \
             cannot fire: no event of its logsource (linux/sudo/-) carries `USER`\n"
        )
    );
}

/// Lines as the programs write them (OpenSSH's ssherr.c / packet.c texts, pkexec's PwnKit
/// message, crontab's edit record), with neighbours that must not fire.
const LOG: &str = "\
Dec 10 06:55:48 web-1 sshd[4211]: Corrupted MAC on input. [preauth]
Dec 10 06:55:49 web-1 sshd-session[4212]: fatal: buffer_get_string: bad string
Dec 10 06:55:50 web-1 sshd[4213]: Failed password for root from 203.0.113.7 port 4022 ssh2
Dec 10 06:55:51 web-1 myapp[77]: Corrupted MAC on input
Dec 10 06:56:00 web-1 pkexec[5000]: alice: The value for environment variable XAUTHORITY contains suscipious content [USER=root] [TTY=/dev/pts/0] [CWD=/home/alice] [COMMAND=GCONV_PATH=./pwnkit.so:.]
Dec 10 06:56:01 web-1 pkexec[5001]: alice: Executing command [USER=root] [TTY=/dev/pts/0]
Dec 10 06:57:00 web-1 crontab[6000]: (root) REPLACE (root)
Dec 10 06:57:01 web-1 myapp[77]: REPLACE done
";

#[test]
fn sigmahq_rules_fire_on_replayed_syslog_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("auth.log");
    std::fs::write(&log, LOG).unwrap_or_else(|e| panic!("{e}"));
    let r = cli::logwarden([
        OsStr::new("replay"),
        OsStr::new("--year"),
        OsStr::new("2025"),
        OsStr::new("--rules"),
        OsStr::new(RULES),
        log.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut hits: Vec<(String, String)> = r
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let id = v["rule"]["id"].as_str().unwrap_or_default().to_owned();
            let msg = v["sample"][0]["message"].as_str().unwrap_or_default().to_owned();
            (id, msg)
        })
        .collect();
    hits.sort();
    let expected = [
        (
            "0506a799-698b-43b4-85a1-ac4c84c720e9",
            "alice: The value for environment variable XAUTHORITY contains suscipious content [USER=root] [TTY=/dev/pts/0] [CWD=/home/alice] [COMMAND=GCONV_PATH=./pwnkit.so:.]",
        ),
        ("af202fd3-7bff-4212-a25a-fb34606cfcbe", "(root) REPLACE (root)"),
        ("e76b413a-83d0-4b94-8e4c-85db4a5b8bdc", "Corrupted MAC on input. [preauth]"),
        ("e76b413a-83d0-4b94-8e4c-85db4a5b8bdc", "fatal: buffer_get_string: bad string"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    assert_eq!(hits, expected, "{}", r.stdout);
}
