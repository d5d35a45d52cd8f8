use std::io;
use std::sync::atomic::AtomicBool;

use redb::backends::InMemoryBackend;
use redb::{ReadableTable as _, StorageBackend};

use super::*;

const T: TableDefinition<u64, u64> = TableDefinition::new("t");

/// Storage that shares its bytes across reopens and fails every write while `full` is set, as
/// a disk with no space left does.
#[derive(Debug)]
struct Disk {
    bytes: Arc<InMemoryBackend>,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.bytes.write(offset, data)
    }
}

fn on_disk() -> (Arc<StateDb>, Arc<AtomicBool>) {
    let bytes = Arc::new(InMemoryBackend::new());
    let full = Arc::new(AtomicBool::new(false));
    let (b, f) = (Arc::clone(&bytes), Arc::clone(&full));
    let db = StateDb::with_opener("test.redb".into(), move || {
        Database::builder()
            .create_with_backend(Disk { bytes: Arc::clone(&b), full: Arc::clone(&f) })
    })
    .unwrap();
    (db, full)
}

fn put(db: &StateDb, k: u64) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.open_table(T).map_err(|e| e.to_string())?.insert(k, k * 10).map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
}

fn keys(db: &StateDb) -> Vec<u64> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(T).unwrap();
    t.iter().unwrap().map(|e| e.unwrap().0.value()).collect()
}

/// Retries `put` as the detection thread does, until it works or `limit` attempts are spent.
fn put_retrying(db: &StateDb, k: u64, limit: usize) -> Result<usize, String> {
    let mut last = String::new();
    for attempt in 0..limit {
        match put(db, k) {
            Ok(()) => return Ok(attempt),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last)
}

#[test]
fn a_full_disk_is_a_fault_until_it_takes_writes_again_and_no_restart_is_needed() {
    let (db, full) = on_disk();
    put(&db, 1).unwrap();
    assert_eq!(db.fault(), None);

    full.store(true, Ordering::SeqCst);
    let e = put(&db, 2).unwrap_err();
    assert!(e.contains("No space left on device"), "{e}");
    let Some(Fault::Io { reason, .. }) = db.fault() else { panic!("{:?}", db.fault()) };
    assert!(reason.contains("No space left on device"), "the first reason is kept: {reason}");
    // redb poisons its handle after an I/O error; while the disk is full every attempt fails,
    // the reopen included, and the fault stays.
    assert!(put_retrying(&db, 2, 10).is_err());
    assert!(matches!(db.fault(), Some(Fault::Io { .. })));
    let errors = db.write_errors();
    assert!(errors >= 2, "{errors}");

    // Room again: the next attempts reopen the file and commit, without a new handle.
    full.store(false, Ordering::SeqCst);
    put_retrying(&db, 2, 200).unwrap();
    assert_eq!(db.fault(), None);
    assert!(db.reopens() >= 1);
    put(&db, 3).unwrap();
    assert_eq!(keys(&db), vec![1, 2, 3], "what was committed before the outage survives");
}

#[test]
fn an_outbox_on_a_full_disk_queues_nothing_then_everything_once() {
    use crate::route::notification::{Kind, Notification};
    use crate::sink::outbox::Outbox;

    let (db, full) = on_disk();
    let outbox = Outbox::with_database(Arc::clone(&db), "test.redb".into()).unwrap();
    let n = |id: &str| Notification {
        id: id.to_owned(),
        sink: "webhook".to_owned(),
        route: "default".to_owned(),
        kind: Kind::New,
        group: Default::default(),
        severity: crate::rule::Severity::High,
        title: format!("alert {id}"),
        alerts: vec![],
        suppressed: 0,
        created: "2026-12-08T01:00:00Z".to_owned(),
    };
    full.store(true, Ordering::SeqCst);
    assert!(outbox.put_all(&[n("a"), n("b")], 1).is_err());
    assert!(outbox.put_all(&[n("a"), n("b")], 1).is_err());
    full.store(false, Ordering::SeqCst);
    let mut queued = None;
    for _ in 0..200 {
        if let Ok(q) = outbox.put_all(&[n("a"), n("b")], 1) {
            queued = Some(q.added);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(queued, Some(2));
    assert_eq!(outbox.pending_len().unwrap(), 2);
    assert_eq!(db.fault(), None);
}

fn written_file(dir: &Path) -> PathBuf {
    let path = dir.join("state.redb");
    let db = StateDb::open(&path).unwrap();
    // Commits of a few keys each: many pages, some of them freed and reused.
    for chunk in 0..100u64 {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for k in chunk * 50..chunk * 50 + 50 {
                t.insert(k, k * 10).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    drop(db);
    path
}

#[test]
fn a_new_file_is_created_and_then_opened_as_existing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let (db, how) = StateDb::open_checked(&path).unwrap();
    assert_eq!(how, Opened::Created);
    put(&db, 7).unwrap();
    drop(db);
    let (db, how) = StateDb::open_checked(&path).unwrap();
    assert_eq!(how, Opened::Existing);
    assert_eq!(keys(&db), vec![7]);
}

#[test]
fn an_empty_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_file(dir.path());
    std::fs::File::create(&path).unwrap();
    let e = StateDb::open(&path).unwrap_err();
    assert!(matches!(e, StateError::Empty { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("logwarden state reset"), "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the file is left as it was");
}

#[test]
fn a_garbage_file_is_damaged_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let garbage: Vec<u8> =
        (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = StateDb::open(&path).unwrap_err();
    assert!(matches!(e, StateError::Damaged { .. }), "{e}");
    assert!(e.to_string().contains("logwarden state check"), "{e}");
}

#[test]
fn a_file_cut_in_half_is_damaged_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_file(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    // redb asserts on the length in its header: a panic, caught and said as damage.
    let e = StateDb::open(&path).unwrap_err();
    assert!(matches!(e, StateError::Damaged { .. }), "{e}");
}

#[test]
fn scattered_bit_flips_are_found_when_the_file_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Past redb's header, one flip every 4 KiB: every page holding data is hit.
    let mut at = 8192;
    while at < bytes.len() {
        bytes[at] ^= 0x5a;
        at += 4096;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = StateDb::open(&path).unwrap_err();
    assert!(matches!(e, StateError::Damaged { .. }), "{e}");
}

#[test]
fn a_file_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(FORMAT_KEY, FORMAT + 1).unwrap();
        txn.commit().unwrap();
    }
    let e = StateDb::open(&path).unwrap_err();
    assert!(matches!(e, StateError::Newer { found, .. } if found == FORMAT + 1), "{e}");
}

#[test]
fn a_file_from_before_the_header_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(1, 10).unwrap();
        txn.commit().unwrap();
    }
    let (db, how) = StateDb::open_checked(&path).unwrap();
    assert_eq!(how, Opened::Existing);
    assert_eq!(keys(&db), vec![1]);
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(META).unwrap().get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
}
