//! The sshd line parser and the extractor dispatch on arbitrary text: never panic, leave the
//! event untouched when they do not recognize a line, and what they fill round-trips as ECS JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::event::Event;
use logwarden::parse::extract::{Extractors, sshd};
use logwarden_fuzz::assert_round_trip;

/// Program names that reach each extractor, the PAM paths (`sshd(pam_unix)`), and one no
/// extractor claims.
const PROGRAMS: [&str; 12] = [
    "sshd",
    "dropbear",
    "vsftpd",
    "sshd-session",
    "sshd(pam_unix)",
    "sudo",
    "su",
    "systemd-logind",
    "useradd",
    "passwd",
    "cron",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sshd::parse_line(text);

    // One Extractors per program, fed every line in order, so the sshd session table (which
    // carries a user from one line to the next of a connection) sees a whole stream.
    let mut streams: Vec<Extractors> = PROGRAMS.iter().map(|_| Extractors::default()).collect();
    for line in text.split('\n') {
        let _ = sshd::parse_line(line);
        for (app, ex) in PROGRAMS.iter().zip(&mut streams) {
            let mut e = Event::default();
            if ex.extract(app, line, &mut e) {
                assert_round_trip(&e);
            } else {
                assert_eq!(e, Event::default(), "{app:?} said no but changed the event");
            }
        }
    }
});
