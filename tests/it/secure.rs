//! Secure defaults (issue 15): mutating the daemon always needs a token (its own, in the
//! state directory, when none is configured); the API and the intake refuse addresses other
//! than loopback without one; a silence of everything needs `force`; every silence change is
//! an alert that reaches the sinks; and `logwarden silence` drives all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{Run, logwarden_env};
use crate::daemon::{Daemon, eventually, free_port, get};

async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(url: &str, token: Option<&str>, body: Value) -> (u16, String) {
    call(reqwest::Method::POST, url, token, Some(body)).await
}

/// The alerts of every notification a JSON-lines sink (stdout or file) wrote.
fn sink_alerts(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The sink's records of silence changes: (change, silence id, by, from).
fn silence_records(path: &Path) -> Vec<(String, String, String, String)> {
    sink_alerts(path)
        .iter()
        .filter(|a| a["rule"]["id"] == "logwarden.silence")
        .map(|a| {
            let d = &a["detail"];
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (s(&d["action"]), s(&d["silence"]["id"]), s(&d["by"]), s(&d["from"]))
        })
        .collect()
}

/// RFC 3339 time `days` from now (a silence without `force` ends within 365 days).
fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn token_in(dir: &Path) -> (String, u32) {
    let path = dir.join("api.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    (std::fs::read_to_string(&path).unwrap().trim_end().to_owned(), mode)
}

#[tokio::test]
async fn the_shipped_daemon_example_guards_mutations_with_its_own_token() {
    let dir = tempfile::tempdir().unwrap();
    let (port, api, intake) = (free_port(), free_port(), free_port());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/daemon.yml");
    let state = dir.path().join("state").join("state.redb");
    std::fs::create_dir(state.parent().unwrap()).unwrap();
    let vars = [
        ("LOGWARDEN_SYSLOG_PORT", port.to_string()),
        ("LOGWARDEN_HTTP_ADDR", format!("127.0.0.1:{api}")),
        ("LOGWARDEN_INTAKE_ADDR", format!("127.0.0.1:{intake}")),
        ("LOGWARDEN_INTAKE_TOKEN", "intake-s3cret".to_owned()),
        ("LOGWARDEN_STATE", state.display().to_string()),
    ];
    let mut daemon = Daemon::start_with(&config, dir.path(), &vars);
    let base = format!("http://127.0.0.1:{api}");
    eventually("healthz", &daemon, async || get(&format!("{base}/healthz"), None).await.0 == 200)
        .await;
    let token_file = state.parent().unwrap().join("api.token");
    let (token, mode) = token_in(state.parent().unwrap());
    assert_eq!(mode, 0o600, "only the daemon's user may read its token");
    assert_eq!(token.len(), 64, "{token}");
    assert!(
        daemon.stderr().contains(&format!("just written to {}", token_file.display())),
        "{}",
        daemon.stderr()
    );

    // Nothing that changes the daemon is open: not without the token, not with another.
    let silence = json!({
        "id": "pentest", "match": {"labels": {"source.ip": "203.0.113.7"}},
        "ends": in_days(30), "created_by": "alice", "comment": "our pentest"
    });
    let url = format!("{base}/api/silences");
    assert_eq!(post(&url, None, silence.clone()).await.0, 401);
    assert_eq!(post(&url, Some("guessed"), silence.clone()).await.0, 401);
    let (code, _) = call(reqwest::Method::POST, &format!("{base}/api/reload"), None, None).await;
    assert_eq!(code, 401);
    let (code, _) =
        call(reqwest::Method::DELETE, &format!("{base}/api/silences/pentest"), None, None).await;
    assert_eq!(code, 401);
    // Reads: /metrics stays open on loopback; alerts and silences carry event content.
    assert_eq!(get(&format!("{base}/metrics"), None).await.0, 200);
    assert_eq!(get(&format!("{base}/api/alerts"), None).await.0, 401);
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some(&token)).await.0, 200);

    // With the token read from the state directory, as `logwarden silence` does.
    let (code, body) = post(&url, Some(&token), silence).await;
    assert_eq!(code, 201, "{body}");
    let stdout = dir.path().join("daemon.stdout");
    eventually("the silence's record on stdout (after the 5 s group wait)", &daemon, async || {
        !silence_records(&stdout).is_empty()
    })
    .await;
    let records = silence_records(&stdout);
    assert_eq!(records.len(), 1, "{records:?}");
    let (change, id, by, from) = &records[0];
    assert_eq!((change.as_str(), id.as_str(), by.as_str()), ("created", "pentest", "alice"));
    assert!(from.starts_with("127.0.0.1:"), "{from}");
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());

    // The same token after a restart.
    let mut daemon = Daemon::start_with(&config, dir.path(), &vars);
    eventually("healthz", &daemon, async || get(&format!("{base}/healthz"), None).await.0 == 200)
        .await;
    assert_eq!(token_in(state.parent().unwrap()).0, token);
    assert!(
        daemon.stderr().contains(&format!("token in {}", token_file.display())),
        "{}",
        daemon.stderr()
    );
    assert!(get(&url, Some(&token)).await.1.contains("pentest"));
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());
}

/// A daemon with a file sink taking every alert at once, a UDP source that alerts after 1 s
/// of quiet, and the API on loopback without a configured token.
fn quiet_daemon_config(dir: &Path, api: u16, udp: u16) -> PathBuf {
    let config = dir.join("logwarden.yml");
    std::fs::write(
        &config,
        format!(
            "state: state.redb
sources:
  quiet: {{type: syslog_udp, listen: \"127.0.0.1:{udp}\", max_silence: 1s}}
api: {{listen: \"127.0.0.1:{api}\"}}
sinks:
  file: {{type: file, path: alerts.jsonl}}
routes:
  - sinks: [file]
    group_wait: 0s
"
        ),
    )
    .unwrap();
    config
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_silence_of_everything_needs_force_and_cannot_hide_its_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let (api, udp) = (free_port(), free_udp_port());
    let config = quiet_daemon_config(dir.path(), api, udp);
    let mut daemon = Daemon::start(&config, dir.path());
    let base = format!("http://127.0.0.1:{api}");
    eventually("healthz", &daemon, async || get(&format!("{base}/healthz"), None).await.0 == 200)
        .await;
    let (token, _) = token_in(dir.path());
    let url = format!("{base}/api/silences");
    let t = Some(token.as_str());

    let all = |m: Value| json!({"id": "mute-all", "match": m, "ends": "2099-01-01T00:00:00Z"});
    for m in [json!({}), json!({"severity": ">= info"})] {
        let (code, body) = post(&url, t, all(m.clone())).await;
        assert_eq!(code, 400, "{m}: {body}");
        assert!(body.contains("matches every alert") && body.contains("force"), "{body}");
    }
    let far = json!({"match": {"rules": ["x"]}, "ends": in_days(400)});
    let (code, body) = post(&url, t, far).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("more than 365 days"), "{body}");
    assert!(get(&url, t).await.1.contains("\"api\":[]"), "nothing refused was stored");

    let mut forced = all(json!({}));
    forced["force"] = json!(true);
    forced["created_by"] = json!("alice");
    forced["comment"] = json!("maintenance");
    let (code, body) = post(&url, t, forced).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["force"], true);

    // The record of muting everything reaches the sink, with who, where from and what.
    let sink = dir.path().join("alerts.jsonl");
    eventually("the record of the silence in the sink", &daemon, async || {
        silence_records(&sink).iter().any(|r| r.0 == "created")
    })
    .await;
    let created =
        sink_alerts(&sink).into_iter().find(|a| a["rule"]["id"] == "logwarden.silence").unwrap();
    assert_eq!(created["severity"], "info");
    let title = created["title"].as_str().unwrap();
    assert!(
        title.starts_with("Silence `mute-all` created by alice from 127.0.0.1:")
            && title.ends_with(": every alert until 2099-01-01T00:00:00Z (forced)"),
        "{title}"
    );
    assert_eq!(created["detail"]["silence"]["match"], json!({}));
    assert_eq!(created["detail"]["silence"]["comment"], "maintenance");
    assert_eq!(created["sample"][0]["user"]["name"], "alice");
    assert_eq!(created["sample"][0]["source"]["ip"], "127.0.0.1");

    // Everything else is silenced: the quiet source's next alert is recorded, not sent.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"<13>Jan  1 00:00:00 host app: hello", ("127.0.0.1", udp)).unwrap();
    eventually("the quiet source's alert, silenced", &daemon, async || {
        let recent = get(&format!("{base}/api/alerts?rule=logwarden-source-silent"), t).await.1;
        let recent: Vec<Value> = serde_json::from_str(&recent).unwrap_or_default();
        recent
            .iter()
            .any(|a| a["routing"] == json!({"decision": "silenced", "silence": "mute-all"}))
    })
    .await;

    // Ending it is recorded too, with who ended it.
    let (code, body) =
        call(reqwest::Method::DELETE, &format!("{url}/mute-all?by=bob"), t, None).await;
    assert_eq!(code, 204, "{body}");
    eventually("the record of its end in the sink", &daemon, async || {
        silence_records(&sink).iter().any(|r| r.0 == "ended")
    })
    .await;
    let records = silence_records(&sink);
    assert_eq!(records.len(), 2, "{records:?}");
    let (change, id, by, from) = &records[1];
    assert_eq!((change.as_str(), id.as_str(), by.as_str()), ("ended", "mute-all", "bob"));
    assert!(from.starts_with("127.0.0.1:"), "{from}");
    let (code, _) = call(reqwest::Method::DELETE, &format!("{url}/mute-all"), t, None).await;
    assert_eq!(code, 404);
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());
}

fn check(config: &Path) -> Run {
    logwarden_env([OsStr::new("check"), OsStr::new("-c"), config.as_os_str()], &[])
}

#[tokio::test]
async fn an_api_or_intake_off_loopback_without_a_token_is_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let config = dir.path().join("logwarden.yml");
    let shown = config.display().to_string();
    let write = |body: &str| {
        std::fs::write(&config, format!("state: state.redb\nrules: {}\n{body}", rules.display()))
            .unwrap()
    };

    write("api:\n  listen: 0.0.0.0:9600\n");
    let r = check(&config);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "{shown}:4: `api.listen`: `0.0.0.0:9600` is not a loopback address, so the API \
             needs `api.token`"
        )),
        "{}",
        r.stderr
    );
    write("api:\n  listen: 0.0.0.0:9600\n  token: s3cret\n");
    let r = check(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let intake = free_port();
    write(&format!("sources:\n  fwd:\n    type: http\n    listen: \"0.0.0.0:{intake}\"\n"));
    let r = check(&config);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let expected = format!(
        "{shown}:5: `sources.fwd.listen`: `0.0.0.0:{intake}` is not a loopback address, so the \
         intake needs `token`"
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    let r = logwarden_env([OsStr::new("run"), OsStr::new("-c"), config.as_os_str()], &[]);
    assert_eq!(r.code, 1, "run refuses: {}", r.stderr);
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    assert!(!dir.path().join("state.redb").exists(), "nothing started");

    // On loopback the intake runs without a token, and says so once.
    let api = free_port();
    write(&format!(
        "sources:\n  fwd: {{type: http, listen: \"127.0.0.1:{intake}\"}}\n\
         api: {{listen: \"127.0.0.1:{api}\"}}\n"
    ));
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("healthz", &daemon, async || {
        get(&format!("http://127.0.0.1:{api}/healthz"), None).await.0 == 200
    })
    .await;
    let warning = format!("the intake on 127.0.0.1:{intake} has no `token`");
    eventually("the warning", &daemon, async || daemon.stderr().contains(&warning)).await;
    let (code, body) =
        call(reqwest::Method::POST, &format!("http://127.0.0.1:{intake}/ingest"), None, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());
    assert_eq!(daemon.stderr().matches(&warning).count(), 1, "{}", daemon.stderr());
}

fn silence_cli(args: &[&str], config: &Path) -> Run {
    let mut argv: Vec<&OsStr> = vec![OsStr::new("silence")];
    argv.extend(args[..1].iter().map(OsStr::new));
    argv.extend([OsStr::new("-c"), config.as_os_str()]);
    argv.extend(args[1..].iter().map(OsStr::new));
    logwarden_env(argv, &[])
}

#[tokio::test]
async fn the_silence_cli_lists_sets_and_ends_silences_on_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (api, udp) = (free_port(), free_udp_port());
    let config = quiet_daemon_config(dir.path(), api, udp);
    let not_running = silence_cli(&["list"], &config);
    assert_eq!(not_running.code, 1);
    assert!(
        not_running.stderr.contains("cannot be used")
            && not_running.stderr.contains(&dir.path().join("api.token").display().to_string()),
        "no daemon has made a token yet: {}",
        not_running.stderr
    );
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("healthz", &daemon, async || {
        get(&format!("http://127.0.0.1:{api}/healthz"), None).await.0 == 200
    })
    .await;

    let r = silence_cli(&["list"], &config);
    assert_eq!((r.code, r.stdout.as_str()), (0, "no silences\n"), "{}", r.stderr);
    let r = silence_cli(
        &[
            "add",
            "--match",
            "user.name=mallory",
            "--for",
            "1h",
            "--comment",
            "pentest",
            "--by",
            "alice",
        ],
        &config,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("silence api-") && r.stdout.contains(" set until "),
        "{}",
        r.stdout
    );
    let r = silence_cli(&["add", "--for", "1h", "--comment", "all", "--id", "mute-all"], &config);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("the daemon refused (400)") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    let r = silence_cli(
        &["add", "--for", "1h", "--comment", "all", "--id", "mute-all", "--by", "alice", "--force"],
        &config,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("silence mute-all set until "), "{}", r.stdout);

    let r = silence_cli(&["list"], &config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("api\tapi-") && l.contains("\tuser.name=mallory\tpentest"))
    );
    assert!(
        lines.iter().any(|l| l.starts_with("api\tmute-all\t")
            && l.contains("\tby alice\tevery alert (forced)\tall"))
    );

    let r = silence_cli(&["end", "mute-all", "--by", "bob"], &config);
    assert_eq!((r.code, r.stdout.as_str()), (0, "silence mute-all ended\n"), "{}", r.stderr);
    let r = silence_cli(&["end", "mute-all"], &config);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(404): no silence `mute-all`"), "{}", r.stderr);

    let sink = dir.path().join("alerts.jsonl");
    eventually("three records in the sink", &daemon, async || silence_records(&sink).len() == 3)
        .await;
    let records: Vec<(String, String, String)> =
        silence_records(&sink).into_iter().map(|(c, id, by, _)| (c, id, by)).collect();
    assert!(records.contains(&("created".into(), "mute-all".into(), "alice".into())));
    assert!(records.contains(&("ended".into(), "mute-all".into(), "bob".into())));

    // A token the daemon does not know is refused, with where it came from.
    let wrong = dir.path().join("wrong.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&wrong, text.replace("api: {listen: ", "api: {token: guessed, listen: "))
        .unwrap();
    let r = silence_cli(&["list"], &wrong);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("refused the token from `api.token` in {}", wrong.display())),
        "{}",
        r.stderr
    );

    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());
    let r = silence_cli(&["list"], &config);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("no logwarden answers at http://127.0.0.1:{api}/")),
        "{}",
        r.stderr
    );
}
