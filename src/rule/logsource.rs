//! A Sigma `logsource` compiled to the events it names: the `event.dataset` values the rule set
//! indexes the rule under, a cheap per-event test, and the fields those events can carry (so
//! `check` can tell a rule that can never fire).
//!
//! SigmaHQ's Linux rules name a syslog program (`service: sshd`) and mostly search the raw
//! message with keywords. Such a line becomes an event of the extractor's dataset when one
//! recognizes it (`sshd`, `pam`, `sudo`...) and of dataset `syslog` when none does, always with
//! the program in `process.name`. So a Linux service is the program, whatever the dataset: an
//! sshd error no extractor knows is still an sshd event.

use crate::event::{Event, Field};
use crate::rule::spec::LogSourceSpec;

/// Every `event.dataset` a syslog line can become: `syslog` (no extractor recognized it) and
/// each extractor's own (src/parse/extract). A test parses a line of each program to keep the
/// list whole.
pub const SYSLOG_DATASETS: &[&str] = &[
    "syslog",
    "sshd",
    "dropbear",
    "pam",
    "sudo",
    "su",
    "systemd-logind",
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "groupmod",
    "gpasswd",
    "passwd",
    "chpasswd",
    "chage",
];

/// OpenSSH's programs: 9.8 moved per-connection logging to `sshd-session`, 10.0 to `sshd-auth`.
const SSHD: &[&str] = &["sshd", "sshd-session", "sshd-auth"];
/// The cron daemons (Debian's `CRON`, Red Hat's `crond`; compared without case) and the
/// programs that log to Red Hat's /var/log/cron beside them (`crontab` edits: `REPLACE`).
const CRON: &[&str] = &["cron", "crond", "crontab", "anacron"];
const SUDO: &[&str] = &["sudo"];
/// Programs that log to the auth facilities (Debian's /var/log/auth.log, Red Hat's
/// /var/log/secure) whatever the line says.
const AUTH: &[&str] = &[
    "sshd",
    "sshd-session",
    "sshd-auth",
    "dropbear",
    "sudo",
    "su",
    "login",
    "systemd-logind",
    "pkexec",
    "polkitd",
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "groupmod",
    "gpasswd",
    "passwd",
    "chpasswd",
    "chage",
    "chsh",
    "chfn",
    "newgrp",
];
/// syslog facility codes `auth` and `authpriv`.
const AUTH_FACILITIES: [u8; 2] = [4, 10];

/// The ECS fields an event made from a syslog line can carry: the header's, the extractors',
/// the source's (`log.*`) and enrichment's (`source.geo.*`). Never an original record, so no
/// source-schema field (`USER`, `Image`, `pam_user`).
const SYSLOG_FIELDS: &[Field] = &[
    Field::Timestamp,
    Field::Created,
    Field::Dataset,
    Field::Category,
    Field::Type,
    Field::Action,
    Field::Outcome,
    Field::Reason,
    Field::UserName,
    Field::UserTargetName,
    Field::GroupName,
    Field::SourceIp,
    Field::SourcePort,
    Field::SourceDomain,
    Field::SourceAddress,
    Field::ServiceName,
    Field::SourceGeoCountry,
    Field::SourceGeoCity,
    Field::HostName,
    Field::ProcessName,
    Field::ProcessPid,
    Field::ProcessCommandLine,
    Field::SyslogFacility,
    Field::SyslogSeverity,
    Field::SyslogMsgid,
    Field::LogFilePath,
    Field::LogSourceAddress,
    Field::LogOffset,
    Field::Message,
];

/// The ECS fields of a CloudTrail event (src/parse/cloudtrail.rs), besides the record's own keys,
/// which are open-ended and so always possibly present.
const CLOUDTRAIL_FIELDS: &[Field] = &[
    Field::Timestamp,
    Field::Created,
    Field::Dataset,
    Field::Provider,
    Field::Category,
    Field::Type,
    Field::Action,
    Field::Outcome,
    Field::Reason,
    Field::UserName,
    Field::UserId,
    Field::SourceIp,
    Field::SourceDomain,
    Field::SourceAddress,
    Field::SourceGeoCountry,
    Field::SourceGeoCity,
    Field::CloudProvider,
    Field::CloudAccountId,
    Field::CloudRegion,
    Field::LogFilePath,
    Field::LogSourceAddress,
    Field::LogOffset,
    Field::OriginalText,
];

/// Which events a logsource covers, beyond the dataset index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    /// Every event of the datasets.
    Any,
    /// Events whose program (`process.name` without a `(module)` suffix, any case) is one of
    /// these, or of the program's own dataset (an extractor's event that lost its program, as
    /// an ECS JSON event may).
    Programs(&'static [&'static str], Option<&'static str>),
    /// The auth log: a program of [`AUTH`], an auth facility, or a line an extractor recognized
    /// (every extractor reads an authentication or account program, PAM included).
    Auth,
}

/// What a rule's events can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carries {
    /// Unknown: any event, any field.
    Anything,
    /// Events made from syslog lines.
    Syslog,
    /// CloudTrail events.
    CloudTrail,
}

/// A compiled `logsource`.
#[derive(Clone, Debug)]
pub struct LogSource {
    datasets: Option<&'static [&'static str]>,
    test: Test,
    carries: Carries,
    /// `product/service/category` as written, for messages.
    label: String,
}

impl Default for LogSource {
    fn default() -> Self {
        LogSource { datasets: None, test: Test::Any, carries: Carries::Anything, label: "-".into() }
    }
}

impl LogSource {
    /// Compiles a rule's `logsource`. An absent logsource, or a product/service logwarden has
    /// no parser for, reads every event (an unknown source must not silently make a rule match
    /// nothing); a `product: linux` one that maps to no program is still known to be read from
    /// syslog lines, which is what [`LogSource::carries`] answers from.
    pub fn compile(spec: Option<&LogSourceSpec>) -> LogSource {
        let Some(ls) = spec else { return LogSource::default() };
        let label = [&ls.product, &ls.service, &ls.category]
            .iter()
            .map(|p| p.as_deref().unwrap_or("-"))
            .collect::<Vec<_>>()
            .join("/");
        let syslog = |test| LogSource {
            datasets: Some(SYSLOG_DATASETS),
            test,
            carries: Carries::Syslog,
            label: label.clone(),
        };
        let product = ls.product.as_deref();
        match (product, ls.service.as_deref(), ls.category.as_deref()) {
            (Some("aws"), Some("cloudtrail"), _) => LogSource {
                datasets: Some(&["cloudtrail"]),
                test: Test::Any,
                carries: Carries::CloudTrail,
                label,
            },
            (Some("linux") | None, Some(service), None) => match service {
                "sshd" => syslog(Test::Programs(SSHD, Some("sshd"))),
                "sudo" => syslog(Test::Programs(SUDO, Some("sudo"))),
                "cron" => syslog(Test::Programs(CRON, None)),
                "auth" => syslog(Test::Auth),
                "syslog" => syslog(Test::Any),
                _ if product.is_some() => {
                    LogSource { carries: Carries::Syslog, label, ..LogSource::default() }
                }
                _ => LogSource { label, ..LogSource::default() },
            },
            (Some("linux"), _, _) => {
                LogSource { carries: Carries::Syslog, label, ..LogSource::default() }
            }
            _ => LogSource { label, ..LogSource::default() },
        }
    }

    /// The `event.dataset` values the source's events have; `None` for any.
    pub fn datasets(&self) -> Option<&[&'static str]> {
        self.datasets
    }

    /// Whether `e` is an event of this source.
    pub fn allows(&self, e: &Event) -> bool {
        if let Some(list) = self.datasets {
            match &e.dataset {
                Some(d) if list.iter().any(|x| **x == **d) => {}
                _ => return false,
            }
        }
        match self.test {
            Test::Any => true,
            Test::Programs(names, dataset) => {
                program_in(e, names) || dataset.is_some_and(|d| e.dataset.as_deref() == Some(d))
            }
            Test::Auth => {
                e.dataset.as_deref().is_some_and(|d| d != "syslog")
                    || program_in(e, AUTH)
                    || e.syslog
                        .as_ref()
                        .and_then(|s| s.facility)
                        .is_some_and(|f| AUTH_FACILITIES.contains(&f))
            }
        }
    }

    /// Whether some event of this source can carry `field`.
    pub fn carries(&self, field: &Field) -> bool {
        match self.carries {
            Carries::Anything => true,
            Carries::Syslog => SYSLOG_FIELDS.contains(field),
            Carries::CloudTrail => {
                matches!(field, Field::Original(_)) || CLOUDTRAIL_FIELDS.contains(field)
            }
        }
    }

    /// `product/service/category` as written (`-` for one not given).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Whether the event's program, without a `(module)` suffix, is one of `names` (ASCII case
/// ignored: Debian's cron logs as `CRON`).
fn program_in(e: &Event, names: &[&str]) -> bool {
    let Some(p) = e.process_name.as_deref() else { return false };
    let p = p.split_once('(').map_or(p, |(p, _)| p);
    names.iter().any(|n| n.eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parser;
    use crate::parse::syslog::SyslogParser;

    fn ls(product: Option<&str>, service: Option<&str>, category: Option<&str>) -> LogSource {
        LogSource::compile(Some(&LogSourceSpec {
            product: product.map(str::to_owned),
            service: service.map(str::to_owned),
            category: category.map(str::to_owned),
            ..LogSourceSpec::default()
        }))
    }

    fn parse(line: &str) -> Event {
        let record = crate::source::RawRecord {
            bytes: bytes::Bytes::copy_from_slice(line.as_bytes()),
            origin: crate::source::Origin {
                source: crate::event::Sym::from_static("t"),
                record: 1,
                offset: 0,
            },
            received: None,
        };
        let mut out = Vec::new();
        SyslogParser::default().parse(&record, &mut out).unwrap();
        out.remove(0)
    }

    /// One line per program, and the logsources that must read it.
    const LINES: &[(&str, &[&str])] = &[
        (
            "<38>Dec 10 06:55:48 h sshd[1]: Failed password for root from 192.0.2.1 port 4 ssh2",
            &["sshd", "auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h sshd-session[1]: error: kex_exchange_identification: read: Connection reset by peer",
            &["sshd", "auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h sshd[1]: fatal: buffer_get_string: bad string",
            &["sshd", "auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h sshd(pam_unix)[1]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=192.0.2.1  user=root",
            &["sshd", "auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h sudo[1]:   alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id",
            &["sudo", "auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h sudo[1]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
            &["sudo", "auth", "syslog"],
        ),
        ("Dec 10 06:55:48 h su[1]: FAILED SU (to root) alice on pts/0", &["auth", "syslog"]),
        ("Dec 10 06:55:48 h systemd-logind[1]: New session 12 of user alice.", &["auth", "syslog"]),
        (
            "Dec 10 06:55:48 h dropbear[1]: Bad password attempt for 'root' from 192.0.2.1:5543",
            &["auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h useradd[1]: new user: name=bob, UID=0, GID=0, home=/root, shell=/bin/bash",
            &["auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h pkexec[1]: alice: The value for environment variable XAUTHORITY contains suscipious content",
            &["auth", "syslog"],
        ),
        (
            "Dec 10 06:55:48 h CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            &["cron", "auth", "syslog"],
        ),
        ("Dec 10 06:55:48 h CRON[1]: (root) CMD (run-parts /etc/cron.hourly)", &["cron", "syslog"]),
        ("Dec 10 06:55:48 h crond[1]: (root) RELOAD (/var/spool/cron/root)", &["cron", "syslog"]),
        ("Dec 10 06:55:48 h crontab[1]: (root) REPLACE (root)", &["cron", "syslog"]),
        ("<86>Dec 10 06:55:48 h anyprog[1]: something on the auth facility", &["auth", "syslog"]),
        (
            "Dec 10 06:55:48 h named[1]: client 192.0.2.1#53: denied AXFR from 192.0.2.1",
            &["syslog"],
        ),
    ];

    #[test]
    fn linux_services_read_the_lines_of_their_programs_whatever_the_dataset() {
        for (line, readers) in LINES {
            let e = parse(line);
            let d = e.dataset.as_deref().unwrap_or("");
            assert!(SYSLOG_DATASETS.contains(&d), "dataset {d} of {line} is not listed");
            for service in ["sshd", "auth", "sudo", "cron", "syslog"] {
                let expected = readers.contains(&service);
                assert_eq!(
                    ls(Some("linux"), Some(service), None).allows(&e),
                    expected,
                    "{service}: {line}"
                );
            }
            // Sigma rules without a product are Linux ones for these services.
            assert_eq!(ls(None, Some("sshd"), None).allows(&e), readers.contains(&"sshd"));
        }
    }

    #[test]
    fn every_extractor_dataset_is_listed() {
        // The datasets the extractor tests produce (src/parse/extract/mod.rs), plus `syslog`.
        for d in ["sshd", "pam", "sudo", "su", "systemd-logind", "groupadd", "chage", "syslog"] {
            assert!(SYSLOG_DATASETS.contains(&d), "{d}");
        }
        for prog in SYSLOG_DATASETS.iter().filter(|d| {
            !matches!(
                **d,
                "syslog" | "pam" | "sshd" | "dropbear" | "sudo" | "su" | "systemd-logind"
            )
        }) {
            assert!(crate::parse::extract::account::is_account_program(prog), "{prog}");
        }
    }

    #[test]
    fn cloudtrail_and_unknown_sources() {
        let ct = ls(Some("aws"), Some("cloudtrail"), None);
        assert_eq!(ct.datasets(), Some(&["cloudtrail"][..]));
        assert!(ct.carries(&Field::Original("requestParameters.bucketName".into())));
        assert!(ct.carries(&Field::CloudRegion));
        assert!(!ct.carries(&Field::ProcessName));
        for unknown in [
            ls(Some("windows"), Some("security"), None),
            ls(Some("aws"), None, None),
            ls(Some("linux"), Some("auditd"), None),
            ls(Some("linux"), None, Some("process_creation")),
            LogSource::compile(None),
        ] {
            assert_eq!(unknown.datasets(), None, "{}", unknown.label());
            assert!(unknown.allows(&Event::default()), "{}", unknown.label());
        }
        // Linux ones are still known to come from syslog lines.
        let auditd = ls(Some("linux"), Some("auditd"), None);
        assert!(!auditd.carries(&Field::Original("a0".into())));
        assert!(auditd.carries(&Field::Message));
        assert_eq!(auditd.label(), "linux/auditd/-");
        assert!(
            ls(Some("windows"), None, Some("process_creation"))
                .carries(&Field::Original("Image".into()))
        );
        let sshd = ls(Some("linux"), Some("sshd"), None);
        assert!(
            !sshd.carries(&Field::Original("Image".into())) && !sshd.carries(&Field::CloudRegion)
        );
        assert!(sshd.carries(&Field::SourceIp) && sshd.carries(&Field::Message));
    }
}
