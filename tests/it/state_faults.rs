//! The state database under real faults, through the binary: a full disk (a small tmpfs as the
//! state directory, filled during a brute force and freed again) and damaged state files
//! (emptied, cut in half, a garbage header, scattered bit flips), then `logwarden state check`
//! and `logwarden state reset`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, eventually, free_port, get, metric, send_tcp};
use crate::receivers::{Receiver, header, receiver};

/// A tmpfs mounted for the test's life (unmounted on drop).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None` where the test may not mount (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` until it says it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // What fits in the last partial chunk too.
    while f.write_all(&chunk[..512]).is_ok() {}
}

fn brute_force(ip: &str) -> Vec<String> {
    (0..5)
        .map(|i| {
            format!(
                "<38>Dec  8 01:00:0{i} web1 sshd[4242]: Failed password for root from {ip} port {} ssh2",
                40000 + i
            )
        })
        .collect()
}

/// Notifications per alerted address, and the idempotency keys each came with.
fn by_ip(rx: &Receiver) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in rx.requests() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let ip = body["group"]["source.ip"].as_str().unwrap().to_owned();
        out.entry(ip).or_default().push(header(&r, "idempotency-key").unwrap().to_owned());
    }
    out
}

fn config(dir: &Path, state: &str, api: u16, source: &str, hook: std::net::SocketAddr) -> PathBuf {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let path = dir.join("logwarden.yml");
    std::fs::write(
        &path,
        format!(
            "state: {state}
rules: {rules}
sources:
  {source}
api: {{listen: \"127.0.0.1:{api}\"}}
sinks:
  hook: {{type: webhook, url: \"http://{hook}/hook\"}}
routes:
  - sinks: [hook]
    match: {{rules: [ssh-bruteforce]}}
    group_by: [source.ip]
    group_wait: 0s
",
            rules = rules.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_full_state_disk_holds_every_alert_and_delivers_each_once_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&state_dir, "4m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs this as root)");
        return;
    };
    let (rx, hook) = receiver(&[]).await;
    let (api, syslog, intake) = (free_port(), free_port(), free_port());
    let source = format!(
        "tcp: {{type: syslog_tcp, listen: \"127.0.0.1:{syslog}\"}}
  intake: {{type: http, listen: \"127.0.0.1:{intake}\", token: in-t0k}}"
    );
    let config = config(dir.path(), "state/state.redb", api, &source, hook);
    let base = format!("http://127.0.0.1:{api}");
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("healthy", &daemon, async || get(&format!("{base}/healthz"), None).await.0 == 200)
        .await;

    let filler = state_dir.join("filler");
    fill(&filler);
    send_tcp(syslog, &brute_force("203.0.113.7")).await;
    eventually("unhealthy while the disk is full", &daemon, async || {
        let (status, body) = get(&format!("{base}/healthz"), None).await;
        status == 503 && body.contains("No space left on device")
    })
    .await;
    let page = get(&format!("{base}/metrics"), None).await.1;
    assert_eq!(metric(&page, "logwarden_state_healthy"), Some(0), "{page}");
    // A forwarder is told to come back later, at once, rather than left hanging.
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{intake}/ingest"))
        .bearer_auth("in-t0k")
        .body("<38>Dec  8 01:00:00 web2 sshd[1]: Accepted password for bob from 192.0.2.1 port 1 ssh2\n")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    // A second attacker during the outage: held back by the full pipeline, not lost.
    send_tcp(syslog, &brute_force("203.0.113.8")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rx.requests().is_empty(), "nothing is sent that was not saved first");

    std::fs::remove_file(&filler).unwrap();
    eventually("healthy again, without a restart", &daemon, async || {
        get(&format!("{base}/healthz"), None).await.0 == 200
    })
    .await;
    eventually("both attackers alerted", &daemon, async || by_ip(&rx).len() == 2).await;
    let page = get(&format!("{base}/metrics"), None).await.1;
    assert!(metric(&page, "logwarden_state_reopens_total").is_some_and(|n| n >= 1), "{page}");
    assert!(metric(&page, "logwarden_state_write_errors_total").is_some_and(|n| n >= 1));
    assert_eq!(metric(&page, "logwarden_state_healthy"), Some(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(daemon.terminate(Duration::from_secs(30)).success(), "{}", daemon.stderr());
    let seen = by_ip(&rx);
    for ip in ["203.0.113.7", "203.0.113.8"] {
        assert_eq!(seen.get(ip).map(Vec::len), Some(1), "{ip}: {seen:?}");
    }
    let said = daemon.stderr();
    assert_eq!(said.matches("No space left on device").count(), 1, "said once:\n{said}");
    assert!(said.contains("writes work again"), "{said}");
}

/// A damage done to a copy of a good state file.
type Damage = fn(&Path);

fn emptied(p: &Path) {
    std::fs::File::create(p).unwrap();
}

fn cut_in_half(p: &Path) {
    let len = std::fs::metadata(p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len / 2).unwrap();
}

fn garbage_header(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    for (i, b) in bytes.iter_mut().take(4096).enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    std::fs::write(p, bytes).unwrap();
}

fn bit_flips(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    let mut at = 8192;
    while at < bytes.len() {
        bytes[at] ^= 0x10;
        at += 4096;
    }
    std::fs::write(p, bytes).unwrap();
}

fn logwarden(args: &[&str], config: &Path) -> (i32, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_logwarden")).args(args).arg(config).output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_damaged_state_file_stops_the_daemon_with_what_to_do_and_reset_alerts_nothing_twice() {
    let (rx, hook) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let history: Vec<String> = brute_force("203.0.113.7")
        .iter()
        .map(|l| l.trim_start_matches("<38>").to_owned() + "\n")
        .collect();
    std::fs::write(&log, history.concat()).unwrap();
    let api = free_port();
    let source = "auth: {type: file, paths: [auth.log], read_from: beginning, poll_interval: 20ms}";
    let config = config(dir.path(), "state.redb", api, source, hook);
    let base = format!("http://127.0.0.1:{api}");
    let state = dir.path().join("state.redb");

    let mut daemon = Daemon::start(&config, dir.path());
    eventually("the history alerted", &daemon, async || by_ip(&rx).len() == 1).await;
    assert!(daemon.terminate(Duration::from_secs(30)).success(), "{}", daemon.stderr());
    let good = dir.path().join("good.redb");
    std::fs::copy(&state, &good).unwrap();

    let damages: [(&str, Damage); 4] = [
        ("emptied", emptied),
        ("cut in half", cut_in_half),
        ("garbage header", garbage_header),
        ("bit flips", bit_flips),
    ];
    for (what, damage) in damages {
        std::fs::copy(&good, &state).unwrap();
        damage(&state);
        let (code, said) = logwarden(&["run", "-c"], &config);
        assert_eq!(code, 1, "{what}: exit status\n{said}");
        assert!(!said.contains("panicked"), "{what}: no panic\n{said}");
        assert!(said.contains(&state.display().to_string()), "{what}: names the file\n{said}");
        assert!(said.contains("logwarden state reset"), "{what}: says what to do\n{said}");
        let (code, said) = logwarden(&["state", "check", "-c"], &config);
        assert_eq!(code, 1, "{what}: check's exit status\n{said}");
        assert!(said.contains("cannot be used"), "{what}: check says so\n{said}");
        assert!(!said.contains("panicked"), "{what}: no panic in check\n{said}");
    }
    // The intact file checks out, with what it holds.
    std::fs::copy(&good, &state).unwrap();
    let (code, said) = logwarden(&["state", "check", "-c"], &config);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("intact") && said.contains("checkpoints"), "{said}");

    // Reset after the last damage: the file goes aside, the log is placed at its end, and the
    // history is not alerted on a second time; a new attack is.
    bit_flips(&state);
    let (code, said) = logwarden(&["state", "reset", "-c"], &config);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("moved aside") && said.contains("1 files placed at their end"), "{said}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("state.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("healthy", &daemon, async || get(&format!("{base}/healthz"), None).await.0 == 200)
        .await;
    let fresh: Vec<String> = brute_force("203.0.113.9")
        .iter()
        .map(|l| l.trim_start_matches("<38>").to_owned() + "\n")
        .collect();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(fresh.concat().as_bytes()).unwrap();
    }
    eventually("the new attack alerted", &daemon, async || by_ip(&rx).len() == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(daemon.terminate(Duration::from_secs(30)).success(), "{}", daemon.stderr());
    let seen = by_ip(&rx);
    assert_eq!(seen.get("203.0.113.7").map(Vec::len), Some(1), "history once: {seen:?}");
    assert_eq!(seen.get("203.0.113.9").map(Vec::len), Some(1), "{seen:?}");
}

#[tokio::test]
async fn a_running_daemon_backs_its_state_up_through_the_cli_and_the_copy_checks_out() {
    let (rx, hook) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = brute_force("203.0.113.7")
        .iter()
        .map(|l| l.trim_start_matches("<38>").to_owned() + "\n")
        .collect();
    std::fs::write(dir.path().join("auth.log"), lines.concat()).unwrap();
    let api = free_port();
    let source = "auth: {type: file, paths: [auth.log], read_from: beginning, poll_interval: 20ms}";
    let config = config(dir.path(), "state.redb", api, source, hook);
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("alerted", &daemon, async || by_ip(&rx).len() == 1).await;

    // The file is locked by the daemon: check refuses and says what to do instead.
    let (code, said) = logwarden(&["state", "check", "-c"], &config);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("in use by a running daemon") && said.contains("state backup"), "{said}");

    let copy = dir.path().join("copy.redb");
    let out = Command::new(env!("CARGO_BIN_EXE_logwarden"))
        .args(["state", "backup", "--to"])
        .arg(&copy)
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("made by the running daemon"), "{said}");
    let (code, said) = logwarden(&["state", "check", "--state"], &copy);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("intact") && said.contains("checkpoints: 1 record\n"), "{said}");
    assert!(
        !dir.path().join("backups").read_dir().unwrap().any(|_| true),
        "the daemon's copy was moved, not left behind"
    );
    assert!(daemon.terminate(Duration::from_secs(30)).success(), "{}", daemon.stderr());
}
