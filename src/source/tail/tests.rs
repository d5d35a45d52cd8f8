//! Tests of the parent module.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::Ordering;

use super::*;

/// Every wait in these tests is bounded by this, so a bug fails a test instead of hanging
/// the suite.
const WAIT: Duration = Duration::from_secs(5);

fn config(paths: &[&Path], read_from: ReadFrom) -> TailConfig {
    TailConfig {
        paths: paths.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
        exclude: Vec::new(),
        read_from,
        poll_interval: Some("20ms".into()),
        max_line_bytes: None,
        format: None,
        max_silence: None,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A record as the tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    path: String,
    record: u64,
    offset: u64,
    text: String,
}

fn line(path: &Path, record: u64, offset: u64, text: &str) -> Line {
    Line { path: path.to_string_lossy().into_owned(), record, offset, text: text.into() }
}

/// A tail running in its own task, and everything it has handed on so far.
struct Running {
    rx: mpsc::Receiver<Batch>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<TailStats>,
    lines: Vec<Line>,
    checkpoints: Vec<Checkpoint>,
}

fn start(tail: Tail, capacity: usize) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(tail.run(tx, shutdown));
    Running { rx, stop, task, lines: Vec::new(), checkpoints: Vec::new() }
}

impl Running {
    fn take(&mut self, batch: Batch) {
        assert!(batch.records.len() <= MAX_BATCH_RECORDS);
        for r in &batch.records {
            assert!(r.received.is_some());
            self.lines.push(Line {
                path: r.origin.source.to_string(),
                record: r.origin.record,
                offset: r.origin.offset,
                text: String::from_utf8(r.bytes.to_vec()).unwrap(),
            });
        }
        self.checkpoints.push(batch.checkpoint.expect("every file batch has a checkpoint"));
    }

    /// Receives until `n` lines have arrived in all.
    async fn until(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.lines.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => self.take(batch),
                Ok(None) => panic!("the tail stopped early"),
                Err(_) => panic!(
                    "only {} of {n} lines, the last ones: {:?}",
                    self.lines.len(),
                    &self.lines[self.lines.len().saturating_sub(3)..]
                ),
            }
        }
    }

    /// Receives whatever else arrives within a few polls: a test then knows nothing more
    /// (a duplicate, a partial line) was on its way.
    async fn settle(&mut self) {
        while let Ok(Some(batch)) =
            tokio::time::timeout(Duration::from_millis(150), self.rx.recv()).await
        {
            self.take(batch);
        }
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }

    async fn stop(mut self) -> (TailStats, Self) {
        self.stop.send(true).unwrap();
        let stats = tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("the tail stops promptly")
            .unwrap();
        while let Ok(batch) = self.rx.try_recv() {
            self.take(batch);
        }
        (stats, self)
    }
}

#[tokio::test]
async fn appended_lines_come_once_and_a_partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    // Empty at startup, so `beginning` is what `end` would be, minus the race between the
    // first write and the first poll.
    let tail = Tail::new("t", &config(&[&log], ReadFrom::Beginning), HashMap::new()).unwrap();
    let mut run = start(tail, 8);

    append(&log, "one\ntwo\n");
    run.until(2).await;
    append(&log, "thr");
    run.settle().await;
    assert_eq!(run.lines.len(), 2, "a line without its newline is not handed on");
    append(&log, "ee\r\nfour\n");
    run.until(4).await;
    run.settle().await;

    let (stats, run) = run.stop().await;
    assert_eq!(
        run.lines,
        vec![
            line(&log, 1, 0, "one"),
            line(&log, 2, 4, "two"),
            line(&log, 3, 8, "three"),
            line(&log, 4, 15, "four"),
        ]
    );
    let last = run.checkpoints.last().unwrap();
    assert_eq!((last.offset, &last.path), (20, &log));
    assert!(last.key.starts_with(&format!("{}:", std::fs::metadata(&log).unwrap().dev())));
    assert_eq!((stats.lines, stats.bytes, stats.files_opened), (4, 20, 1));
}

#[tokio::test]
async fn overlong_lines_are_counted_skipped_and_checkpointed_past() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.max_line_bytes = Some(8);
    let mut run = start(Tail::new("t", &cfg, HashMap::new()).unwrap(), 8);

    append(&log, "ok\nthis one is too long\n");
    run.until(1).await;
    // A batch of nothing but an over-long line still moves the checkpoint.
    append(&log, "and this one too, much too long\n");
    run.settle().await;
    append(&log, "ok2\n");
    run.until(2).await;
    let (stats, run) = run.stop().await;
    assert_eq!(run.lines, vec![line(&log, 1, 0, "ok"), line(&log, 4, 56, "ok2")]);
    let offsets: Vec<u64> = run.checkpoints.iter().map(|c| c.offset).collect();
    assert!(offsets.contains(&56), "checkpoints {offsets:?}");
    assert_eq!(offsets.last(), Some(&60));
    assert_eq!((stats.lines, stats.too_long, stats.bytes), (2, 2, 60));
}

/// Writes 600 lines of 10 bytes, renaming app.log to app.log.1 after the first 300, writing
/// 10 more to the renamed file (a writer that has not reopened yet), then going on in a new
/// app.log; every line must come exactly once, at its offset in its file.
async fn rotation_by_rename(pattern: &str) -> Vec<Line> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let old = dir.path().join("app.log.1");
    std::fs::write(&log, "").unwrap();
    let pattern = dir.path().join(pattern);
    let cfg = config(&[&pattern], ReadFrom::Beginning);
    let mut run = start(Tail::new("t", &cfg, HashMap::new()).unwrap(), 4);

    let (w_log, w_old) = (log.clone(), old.clone());
    let writer = tokio::task::spawn_blocking(move || {
        let mut f = OpenOptions::new().append(true).open(&w_log).unwrap();
        for i in 0..310 {
            if i == 300 {
                std::fs::rename(&w_log, &w_old).unwrap();
            }
            writeln!(f, "line {i:04}").unwrap();
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut f = OpenOptions::new().create_new(true).append(true).open(&w_log).unwrap();
        for i in 310..600 {
            writeln!(f, "line {i:04}").unwrap();
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    run.until(600).await;
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    run.settle().await;
    let (stats, run) = run.stop().await;

    let mut texts = run.texts();
    texts.sort_unstable();
    let expected: Vec<String> = (0..600).map(|i| format!("line {i:04}")).collect();
    assert_eq!(texts, expected, "every line exactly once");
    for l in &run.lines {
        let i: u64 = l.text[5..].parse().unwrap();
        let (offset, record) = if i < 310 { (i * 10, i + 1) } else { ((i - 310) * 10, i - 309) };
        assert_eq!((l.offset, l.record), (offset, record), "{l:?}");
    }
    assert_eq!((stats.rotations, stats.files_opened, stats.truncations), (1, 2, 0));
    run.lines
}

#[tokio::test]
async fn rotation_by_rename_while_writing_loses_and_repeats_nothing() {
    let lines = rotation_by_rename("app.log").await;
    // The renamed file leaves the glob: its lines keep the name they were read under.
    assert!(lines.iter().all(|l| l.path.ends_with("app.log")));
}

#[tokio::test]
async fn a_file_renamed_within_the_glob_is_followed_not_reread() {
    let lines = rotation_by_rename("app.log*").await;
    assert!(lines.iter().any(|l| l.path.ends_with("app.log")));
}

#[tokio::test]
async fn copytruncate_starts_again_from_zero_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a1\na2\na3\n").unwrap();
    let tail = Tail::new("t", &config(&[&log], ReadFrom::Beginning), HashMap::new()).unwrap();
    let mut run = start(tail, 8);
    run.until(3).await;

    // The writer keeps its O_APPEND handle, as with logrotate's copytruncate.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    writer.write_all(b"b1\n").unwrap();
    run.until(4).await;
    writer.write_all(b"b2\n").unwrap();
    run.until(5).await;

    // Truncated and rewritten past our offset before the next poll: the size alone cannot
    // tell, the changed first bytes do.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    writer.write_all(b"c1 is longer\nc2\n").unwrap();
    run.until(7).await;
    run.settle().await;

    let (stats, run) = run.stop().await;
    assert_eq!(
        run.lines[3..],
        [
            line(&log, 1, 0, "b1"),
            line(&log, 2, 3, "b2"),
            line(&log, 1, 0, "c1 is longer"),
            line(&log, 2, 13, "c2"),
        ]
    );
    assert_eq!(run.lines.len(), 7);
    assert_eq!((stats.truncations, stats.rotations, stats.files_opened), (2, 0, 1));
    assert_eq!(run.checkpoints.last().unwrap().offset, 16);
}

#[tokio::test]
async fn a_restart_resumes_right_after_the_last_line_handed_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let all: Vec<String> = (1..=30).map(|i| format!("entry {i}")).collect();
    std::fs::write(&log, all[..10].iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut first = start(Tail::new("t", &cfg, HashMap::new()).unwrap(), 8);
    first.until(10).await;
    for l in &all[10..20] {
        append(&log, &format!("{l}\n"));
    }
    append(&log, "entry 2"); // a line half-written when we stop
    first.until(20).await;
    first.settle().await;
    let (_, first) = first.stop().await;
    let last = first.checkpoints.last().unwrap().clone();
    assert_eq!(last.offset, std::fs::metadata(&log).unwrap().len() - "entry 2".len() as u64);

    append(&log, "1\n");
    for l in &all[21..] {
        append(&log, &format!("{l}\n"));
    }
    // `end` would skip everything and `beginning` would repeat it: only the checkpoint
    // gives the right answer.
    let cfg = config(&[&log], ReadFrom::End);
    let committed = HashMap::from([(last.key.clone(), last.offset)]);
    let mut second = start(Tail::new("t", &cfg, committed).unwrap(), 8);
    second.until(10).await;
    second.settle().await;
    let (stats, second) = second.stop().await;
    assert_eq!(second.lines[0], line(&log, 1, last.offset, "entry 21"));
    let union: Vec<&str> = first.texts().into_iter().chain(second.texts()).collect();
    assert_eq!(union, all);
    assert_eq!(second.checkpoints.last().unwrap().key, last.key);
    assert_eq!(stats.truncations, 0);
}

#[tokio::test]
async fn a_checkpoint_beyond_the_end_of_its_file_reads_it_again_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a\nb\n").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let key = key(FileId::of(&meta), &Fingerprint::of(b"a\nb\n"));
    let cfg = config(&[&log], ReadFrom::End);
    let mut run = start(Tail::new("t", &cfg, HashMap::from([(key, 100)])).unwrap(), 8);
    run.until(2).await;
    let (stats, run) = run.stop().await;
    assert_eq!(run.texts(), ["a", "b"]);
    assert_eq!(stats.truncations, 1);
}

#[tokio::test]
async fn read_from_decides_for_files_found_at_startup_only() {
    let dir = tempfile::tempdir().unwrap();
    let (end_dir, start_dir) = (dir.path().join("end"), dir.path().join("start"));
    std::fs::create_dir(&end_dir).unwrap();
    std::fs::create_dir(&start_dir).unwrap();
    // The last line is still being written at startup: `end` reads it whole once finished.
    for d in [&end_dir, &start_dir] {
        std::fs::write(d.join("old.log"), "x1\nx2\nx3-part").unwrap();
    }
    let from_end = config(&[&end_dir.join("*.log")], ReadFrom::End);
    let from_start = config(&[&start_dir.join("*.log")], ReadFrom::Beginning);
    let mut end = start(Tail::new("t", &from_end, HashMap::new()).unwrap(), 8);
    let mut beginning = start(Tail::new("t", &from_start, HashMap::new()).unwrap(), 8);
    beginning.until(2).await;
    end.settle().await;
    assert!(end.lines.is_empty(), "{:?}", end.lines);

    append(&end_dir.join("old.log"), "ial\nx4\n");
    end.until(2).await;
    std::fs::write(end_dir.join("new.log"), "n1\nn2\n").unwrap();
    end.until(4).await;
    end.settle().await;

    let (_, end) = end.stop().await;
    let (_, beginning) = beginning.stop().await;
    let old = end_dir.join("old.log");
    let new = end_dir.join("new.log");
    assert_eq!(
        end.lines,
        [
            line(&old, 1, 6, "x3-partial"),
            line(&old, 2, 17, "x4"),
            line(&new, 1, 0, "n1"),
            line(&new, 2, 3, "n2"),
        ]
    );
    assert_eq!(beginning.texts(), ["x1", "x2"]);
}

#[tokio::test]
async fn the_glob_picks_up_new_matching_files_and_skips_excluded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&[&dir.path().join("*.log*")], ReadFrom::End);
    cfg.exclude = vec!["*.gz".into()];
    let mut run = start(Tail::new("t", &cfg, HashMap::new()).unwrap(), 8);
    run.settle().await;

    std::fs::write(dir.path().join("a.log.gz"), "compressed\n").unwrap();
    std::fs::write(dir.path().join("a.txt"), "not matched\n").unwrap();
    std::fs::create_dir(dir.path().join("dir.log")).unwrap();
    std::fs::write(dir.path().join("a.log"), "a1\n").unwrap();
    run.until(1).await;
    std::fs::write(dir.path().join("b.log"), "b1\n").unwrap();
    run.until(2).await;
    run.settle().await;

    let (stats, run) = run.stop().await;
    assert_eq!(run.texts(), ["a1", "b1"]);
    assert_eq!(stats.files_opened, 2);
}

#[tokio::test]
async fn a_full_channel_holds_the_tail_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let tail = Tail::new("t", &config(&[&log], ReadFrom::Beginning), HashMap::new()).unwrap();
    let mut run = start(tail, 1);
    let w_log = log.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut f = OpenOptions::new().append(true).open(&w_log).unwrap();
        for chunk in 0..10 {
            let text: String = (0..500).map(|i| format!("{chunk:02}-{i:03}\n")).collect();
            f.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while run.lines.len() < 5000 {
        let batch = tokio::time::timeout_at(deadline, run.rx.recv()).await.unwrap().unwrap();
        run.take(batch);
        // A slow receiver.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    run.settle().await;
    let (stats, run) = run.stop().await;
    let expected: Vec<String> =
        (0..10).flat_map(|c| (0..500).map(move |i| format!("{c:02}-{i:03}"))).collect();
    assert_eq!(run.texts(), expected);
    assert!(run.lines.iter().enumerate().all(|(i, l)| l.offset == i as u64 * 7));
    assert_eq!(stats.lines, 5000);
}

#[tokio::test]
async fn shutdown_stops_a_tail_blocked_on_a_full_channel() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n".repeat(5000)).unwrap();
    let tail = Tail::new("t", &config(&[&log], ReadFrom::Beginning), HashMap::new()).unwrap();
    let mut run = start(tail, 1);
    run.until(1).await;
    let asked = Instant::now();
    let (_, run) = run.stop().await;
    // Generous against a loaded machine, yet far below what 5000 more lines through a
    // channel nobody reads would take (forever).
    assert!(asked.elapsed() < Duration::from_secs(1), "{:?}", asked.elapsed());
    assert!(run.lines.len() < 5000);
}

/// Steps a core until its round ends idle, collecting the batches.
fn drain(core: &mut Core, now: Instant) -> Vec<Batch> {
    let mut batches = Vec::new();
    for _ in 0..100 {
        match core.step(now) {
            Step::Batch(b) => batches.push(b),
            Step::Busy => {}
            Step::Idle => return batches,
        }
    }
    panic!("the core never went idle");
}

#[test]
fn a_deleted_file_is_read_to_its_end_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a\n").unwrap();
    let Tail { mut core, .. } =
        Tail::new("t", &config(&[&log], ReadFrom::Beginning), HashMap::new()).unwrap();
    let t0 = Instant::now();
    assert_eq!(drain(&mut core, t0).len(), 1);
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    writer.write_all(b"b\nc").unwrap();
    let tick = Duration::from_millis(20);
    let batches = drain(&mut core, t0 + tick);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records.len(), 1, "b, and not the unterminated c");
    assert_eq!(core.files.len(), 1, "kept open for a writer that has not reopened yet");
    drain(&mut core, t0 + tick * 3);
    assert_eq!(core.files.len(), 1);
    drain(&mut core, t0 + tick * 6);
    assert_eq!(core.files.len(), 0);
    assert_eq!((core.stats.rotations, core.stats.lines), (0, 2));
    assert!(core.known.is_empty(), "a deleted file cannot come back");
}

fn core(log: &Path, read_from: ReadFrom, committed: HashMap<String, u64>) -> Core {
    Tail::new("t", &config(&[log], read_from), committed).unwrap().core
}

fn texts(batches: &[Batch]) -> Vec<(u64, u64, String)> {
    let records = batches.iter().flat_map(|b| &b.records);
    records
        .map(|r| {
            let text = String::from_utf8_lossy(&r.bytes).into_owned();
            (r.origin.record, r.origin.offset, text)
        })
        .collect()
}

#[test]
fn a_file_truncated_and_rewritten_past_our_offset_between_polls_is_read_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a1\na2\n").unwrap();
    let mut core = core(&log, ReadFrom::Beginning, HashMap::new());
    let now = Instant::now();
    let first = drain(&mut core, now);
    assert_eq!(texts(&first).len(), 2);
    // Same inode, longer than before: only the first bytes tell.
    std::fs::write(&log, "rewritten, longer\n").unwrap();
    let second = drain(&mut core, now);
    assert_eq!(texts(&second), [(1, 0, "rewritten, longer".to_string())]);
    assert_eq!(core.stats.truncations, 1);
    let key = |b: &[Batch]| b[0].checkpoint.clone().unwrap().key;
    assert_ne!(key(&first), key(&second), "a new content is a new identity");
}

#[test]
fn a_short_file_keeps_its_key_while_it_grows_and_a_restart_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let mut core = core(&log, ReadFrom::Beginning, HashMap::new());
    let now = Instant::now();
    drain(&mut core, now);
    append(&log, "a\n");
    let first = drain(&mut core, now).pop().unwrap().checkpoint.unwrap();
    append(&log, &"b".repeat(300));
    append(&log, "\n");
    let second = drain(&mut core, now).pop().unwrap().checkpoint.unwrap();
    assert_eq!(first.key, second.key);
    assert_eq!(second.offset, 303);

    append(&log, "c\n");
    let mut again = self::core(&log, ReadFrom::End, HashMap::from([(first.key, 2)]));
    assert_eq!(texts(&drain(&mut again, now)), [(1, 2, "b".repeat(300)), (2, 303, "c".into())]);
}

#[test]
fn a_reused_inode_with_other_first_bytes_is_a_new_file_read_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "new content\n").unwrap();
    let id = FileId::of(&std::fs::metadata(&log).unwrap());
    let stale = key(id, &Fingerprint::of(b"old content\n"));
    // `end` would skip it, but we know this inode held something else: all of it is new.
    let mut core = core(&log, ReadFrom::End, HashMap::from([(stale, 12)]));
    let batches = drain(&mut core, Instant::now());
    assert_eq!(texts(&batches), [(1, 0, "new content".to_string())]);
    assert_eq!(core.stats.truncations, 0);
    assert!(core.known.is_empty());
}

#[test]
fn identity_keys_round_trip_and_foreign_keys_are_ignored() {
    let id = FileId { dev: 2049, ino: 1234567 };
    let fp = Fingerprint::of(b"Jan  1 00:00:00 host sshd[1]: hello\n");
    let k = key(id, &fp);
    assert_eq!(k, format!("2049:1234567:36:{}", fp.hash));
    assert_eq!(parse_key(&k), Some((id, fp)));
    for foreign in ["", "syslog:udp", "1:2:3", "1:2:3:xyz", "a:2:3:0123456789abcdef"] {
        assert_eq!(parse_key(foreign), None, "{foreign}");
    }
}

#[test]
fn config_is_strict_and_errors_name_the_field() {
    let cfg: TailConfig = serde_saphyr::from_str("paths: [/var/log/*.log]\n").unwrap();
    assert_eq!((cfg.read_from, cfg.poll_interval), (ReadFrom::End, None));
    let cfg: TailConfig =
        serde_saphyr::from_str("paths: [a]\nread_from: beginning\nexclude: ['*.gz']\n").unwrap();
    assert_eq!(cfg.read_from, ReadFrom::Beginning);
    assert!(serde_saphyr::from_str::<TailConfig>("paths: [a]\nfollow: yes\n").is_err());

    let bad = |cfg: TailConfig| Tail::new("auth", &cfg, HashMap::new()).err().unwrap();
    let base = config(&[Path::new("/var/log/a.log")], ReadFrom::End);
    let e = bad(TailConfig { exclude: vec!["[z-a".into()], ..base.clone() });
    assert!(e.to_string().contains("`[z-a` in exclude"), "{e}");
    assert_eq!(e.kind(), "bad_glob");
    let e = bad(TailConfig { paths: vec!["/var/log/[".into()], ..base.clone() });
    assert!(e.to_string().contains("source auth: bad glob `/var/log/[` in paths"), "{e}");
    let e = bad(TailConfig { poll_interval: Some("10".into()), ..base.clone() });
    assert!(e.to_string().contains("poll_interval"), "{e}");
    let e = bad(TailConfig { poll_interval: Some("0s".into()), ..base.clone() });
    assert!(e.to_string().contains("more than zero"), "{e}");
    let e = bad(TailConfig { max_line_bytes: Some(0), ..base.clone() });
    assert_eq!(e.kind(), "bad_max_line_bytes");
    let e = bad(TailConfig { paths: vec![], ..base });
    assert_eq!(e.kind(), "no_paths");
}

/// A core resumed from `committed` with the history the state database keeps: each key's
/// path and the key last committed under each path.
fn resumed(pattern: &Path, read_from: ReadFrom, last: &[&Checkpoint]) -> Core {
    let committed = last.iter().map(|c| (c.key.clone(), c.offset)).collect();
    let paths = last.iter().map(|c| (c.key.clone(), c.path.clone())).collect();
    let heads = last.iter().map(|c| (c.path.clone(), c.key.clone())).collect();
    Tail::new("t", &config(&[pattern], read_from), committed)
        .unwrap()
        .with_counters(Arc::new(SourceCounters::default()))
        .with_history(&paths, &heads)
        .core
}

/// Steps until two rounds in a row end idle (a file waiting for its rotated predecessor is
/// opened at the round after it).
fn settle(core: &mut Core, now: Instant) -> Vec<Batch> {
    let mut all = drain(core, now);
    loop {
        let more = drain(core, now);
        if more.is_empty() {
            return all;
        }
        all.extend(more);
    }
}

/// Reads `log` (two lines) with a core, returning its last checkpoint: the daemon then stops.
fn read_then_stop(log: &Path) -> Checkpoint {
    std::fs::write(log, "Dec  7 10:00:00 h app: a\nDec  7 10:00:01 h app: b\n").unwrap();
    let mut first = core(log, ReadFrom::Beginning, HashMap::new());
    let batches = drain(&mut first, Instant::now());
    assert_eq!(texts(&batches).len(), 2);
    batches.last().unwrap().checkpoint.clone().unwrap()
}

fn gzip(path: &Path, bytes: &[u8]) {
    let mut e = flate2::write::GzEncoder::new(File::create(path).unwrap(), Default::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn messages(batches: &[Batch]) -> Vec<(String, u64, String)> {
    let records = batches.iter().flat_map(|b| &b.records);
    records
        .map(|r| {
            let text = String::from_utf8_lossy(&r.bytes).into_owned();
            let file = Path::new(r.origin.source.as_str()).file_name().unwrap();
            (file.to_string_lossy().into_owned(), r.origin.offset, text[23..].to_owned())
        })
        .collect()
}

#[test]
fn a_file_renamed_while_stopped_is_finished_from_its_checkpoint_then_the_new_one_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let last = read_then_stop(&log);
    // While stopped: two more lines, then logrotate's rename and a new file with two lines.
    append(&log, "Dec  7 10:00:02 h app: c\nDec  7 10:00:03 h app: d\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&log, "Dec  7 10:00:04 h app: e\nDec  7 10:00:05 h app: f\n").unwrap();

    // `read_from: end`, and `paths` names only the live file, as the shipped example does.
    let mut core = resumed(&log, ReadFrom::End, &[&last]);
    let batches = settle(&mut core, Instant::now());
    let s = |f: &str, o, t: &str| (f.to_string(), o, t.to_string());
    assert_eq!(
        messages(&batches),
        [s("app.log", 50, "c"), s("app.log", 75, "d"), s("app.log", 0, "e"), s("app.log", 25, "f")]
    );
    // The old file's checkpoints keep its key and the name it was followed under.
    let old = batches[0].checkpoint.clone().unwrap();
    assert_eq!((old.key, old.path, old.offset), (last.key.clone(), log.clone(), 100));
    assert_eq!((core.stats.rotated_found, core.stats.rotated_lost), (1, 0));
    assert!(core.held.is_empty());
}

#[test]
fn a_file_rotated_and_compressed_while_stopped_is_finished_from_the_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let last = read_then_stop(&log);
    append(&log, "Dec  7 10:00:02 h app: c\nDec  7 10:00:03 h app: d");
    // rotate + compress (no delaycompress): only the .gz is left, and the new file may
    // well get the old one's inode.
    gzip(&dir.path().join("app.log-20261207.gz"), &std::fs::read(&log).unwrap());
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "Dec  7 10:00:04 h app: e\n").unwrap();

    let mut core = resumed(&log, ReadFrom::End, &[&last]);
    let batches = settle(&mut core, Instant::now());
    let s = |o, t: &str| ("app.log".to_string(), o, t.to_string());
    // The compressed copy is complete: its unterminated last line is a line.
    assert_eq!(messages(&batches), [s(50, "c"), s(75, "d"), s(0, "e")]);
    let old = batches[0].checkpoint.clone().unwrap();
    assert_eq!((&old.key, old.offset), (&last.key, 99));
    assert_eq!((core.stats.rotated_found, core.stats.rotated_lost), (1, 0));

    // Stopped again right after: nothing is read twice.
    let new = batches.last().unwrap().checkpoint.clone().unwrap();
    let mut again = resumed(&log, ReadFrom::End, &[&old, &new]);
    assert!(settle(&mut again, Instant::now()).is_empty());
    assert_eq!((again.stats.rotated_found, again.stats.rotated_lost), (0, 0));
}

#[test]
fn a_rotated_file_that_cannot_be_found_is_counted_and_the_new_one_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let last = read_then_stop(&log);
    append(&log, "Dec  7 10:00:02 h app: lost\n");
    // Rotated into another directory (logrotate's olddir): not beside the path.
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::rename(&log, dir.path().join("old/app.log.1")).unwrap();
    std::fs::write(&log, "Dec  7 10:00:04 h app: e\n").unwrap();

    let counters = Arc::new(SourceCounters::default());
    let mut core = resumed(&log, ReadFrom::End, &[&last]);
    core.aside.counters = Arc::clone(&counters);
    let batches = settle(&mut core, Instant::now());
    assert_eq!(messages(&batches), [("app.log".to_string(), 0, "e".to_string())]);
    assert_eq!((core.stats.rotated_found, core.stats.rotated_lost), (0, 1));
    assert_eq!(counters.rotated_lost.load(Ordering::Relaxed), 1);
}

#[test]
fn older_checkpoints_of_a_path_do_not_make_a_restart_look_for_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let last = read_then_stop(&log);
    // A checkpoint of the file this path held a week ago, long since deleted.
    let stale = Checkpoint {
        key: key(FileId { dev: 1, ino: 2 }, &Fingerprint::of(b"older")),
        path: log.clone(),
        offset: 5,
    };
    append(&log, "Dec  7 10:00:02 h app: c\n");
    let mut core = resumed(&log, ReadFrom::End, &[&stale, &last]);
    let batches = settle(&mut core, Instant::now());
    assert_eq!(messages(&batches), [("app.log".to_string(), 50, "c".to_string())]);
    assert_eq!((core.stats.rotated_found, core.stats.rotated_lost), (0, 0));
}

#[test]
fn an_overlong_line_between_two_lines_is_set_aside_counted_and_passed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let sshd = "Dec  7 10:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n";
    std::fs::write(&log, format!("{sshd}{}\n{sshd}", "x".repeat(100 * 1024))).unwrap();
    let counters = Arc::new(SourceCounters::default());
    let tail = Tail::new("auth", &config(&[&log], ReadFrom::Beginning), HashMap::new())
        .unwrap()
        .with_counters(Arc::clone(&counters));
    let mut core = tail.core;
    let batches = settle(&mut core, Instant::now());
    let got = texts(&batches);
    let second = (sshd.len() + 100 * 1024 + 1) as u64;
    assert_eq!(got, [(1, 0, sshd.trim_end().into()), (3, second, sshd.trim_end().into())]);
    assert_eq!(
        batches.last().unwrap().checkpoint.clone().unwrap().offset,
        second * 2 - 102_400 - 1
    );
    assert_eq!(counters.too_long.load(Ordering::Relaxed), 1);
    assert_eq!(counters.records_in.load(Ordering::Relaxed), 1, "the set-aside line is a record");
    assert_eq!(core.stats.too_long, 1);
}

#[test]
fn under_a_glob_the_renamed_file_resumes_by_itself_and_the_new_one_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let last = read_then_stop(&log);
    append(&log, "Dec  7 10:00:02 h app: c\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&log, "Dec  7 10:00:04 h app: e\n").unwrap();

    // `app.log*` matches the rotated name: the file is found there and resumed from its
    // checkpoint as any found file is, not looked for, not lost; the new app.log is new.
    let mut core = resumed(&dir.path().join("app.log*"), ReadFrom::End, &[&last]);
    let mut got = messages(&settle(&mut core, Instant::now()));
    got.sort();
    let s = |f: &str, o, t: &str| (f.to_string(), o, t.to_string());
    assert_eq!(got, [s("app.log", 0, "e"), s("app.log.1", 50, "c")]);
    assert_eq!((core.stats.rotated_found, core.stats.rotated_lost), (0, 0));
}
