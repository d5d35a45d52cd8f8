//! Running the `logwarden` binary from tests, as a user would.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`logwarden_env`] lets a run take before it kills it and fails the test: far more
/// than any run needs, so a hang fails the test instead of stalling the suite.
const DEADLINE: Duration = Duration::from_secs(60);

/// What one run of the binary did.
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `logwarden ARGS...` to completion.
pub fn logwarden<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_logwarden"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run logwarden: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `logwarden ARGS...` to completion with `vars` set, failing the test if it takes longer
/// than [`DEADLINE`]. Every other `LOGWARDEN_*` variable of the test's own environment is
/// removed first, so a developer's settings cannot reach a config under test through
/// `${LOGWARDEN_...:-default}`.
pub fn logwarden_env<I, S>(args: I, vars: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logwarden"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LOGWARDEN_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run logwarden: {e}"));
    // Read both pipes while waiting, so a chatty run cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for logwarden: {e}"),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!("{shown} did not finish within {DEADLINE:?} and was killed; stderr:\n{stderr}");
    };
    Run { code: status.code().unwrap_or(-1), stdout, stderr }
}

/// Issue 14: `state: ${LOGWARDEN_STATE:-default}` in the shipped configs takes its default
/// when the variable is unset, for the commands that read only the state path as for `run`.
/// Each config is copied beside nothing else, so the database lands in a temporary directory.
#[test]
fn issue_14_state_default_applies_to_outbox_and_scan_commands() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let shipped = [
        ("logwarden.yml", "logwarden-state.redb"),
        ("scan.yml", "scan-state.redb"),
        ("daemon.yml", "logwarden-daemon.redb"),
        ("forwarder.yml", "logwarden-forwarder.redb"),
    ];
    for (name, db) in shipped {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(name);
        std::fs::copy(examples.join(name), &config).unwrap();
        let c = config.to_str().unwrap();
        let run = logwarden_env(["outbox", "list", "-c", c], &[]);
        let db = dir.path().join(db);
        let said = format!("{}: 0 pending, 0 dead\n", db.display());
        assert_eq!((run.code, run.stderr.as_str()), (0, said.as_str()), "outbox list -c {name}");
        assert_eq!(run.stdout, "");
        assert!(db.exists(), "{name}: the default names {}", db.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scan.yml");
    std::fs::copy(examples.join("scan.yml"), &config).unwrap();
    let run = logwarden_env(["scan", "findings", "-c", config.to_str().unwrap()], &[]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "scan findings -c scan.yml");
    assert_eq!(run.stdout, "APP\tSTAGE\tSEVERITY\tCVSS\tID\tCOMPONENT\tFIXED\tSCANNERS\n");
    assert!(dir.path().join("scan-state.redb").exists());
}
