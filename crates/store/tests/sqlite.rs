//! The SQLite backend: the conformance suite, plus what only a file can show (durability across
//! reopen, migrations).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use chargeops_store::suite::{self, at, charger, start16, station};
use chargeops_store::{ErrorKind, SqliteStore, Store};

/// A directory of its own under the system temp dir. Directories that earlier runs left behind
/// are swept once they are an hour old.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let root = std::env::temp_dir().join("chargeops-store-tests");
    if NEXT.load(Ordering::Relaxed) == 0 {
        sweep(&root);
    }
    let dir = root.join(format!(
        "{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn sweep(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn make_store() -> SqliteStore {
    SqliteStore::open_dir(&temp_dir()).expect("open store")
}

chargeops_store::store_conformance_suite!(async { make_store().await });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopen() {
    let dir = temp_dir();
    let store = SqliteStore::open_dir(&dir).expect("open");
    let written = suite::write_before_reopen(&store).await;
    drop(store);

    let store = SqliteStore::open_dir(&dir).expect("reopen");
    suite::check_after_reopen(&store, &written).await;
}

const CRASH_DIR: &str = "CHARGEOPS_STORE_TEST_CRASH_DIR";

/// kill -9 the process while it writes as fast as it can: every start it acknowledged (printed
/// after `.await` returned, as the gateway answers a charger) is in the file afterwards.
#[test]
fn acknowledged_writes_survive_kill_9() {
    const ACKS: usize = 400;
    let dir = temp_dir();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open_dir(&dir).expect("open");
        store.upsert_station(&station("S1")).await.expect("station");
        store
            .insert_charger(&charger("CP1", "S1"))
            .await
            .expect("charger");
    });

    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writes_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        let Some(rest) = line.strip_prefix("acked ") else {
            continue;
        };
        let fields: Vec<i64> = rest
            .split(' ')
            .map(|f| f.parse().expect("number"))
            .collect();
        acked.push((fields[0], fields[1], fields[2]));
        if acked.len() == ACKS {
            break;
        }
    }
    assert_eq!(acked.len(), ACKS, "the writer process ended early");
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reap");

    runtime.block_on(async {
        let store = SqliteStore::open_dir(&dir).expect("reopen after crash");
        for &(id, connector, ms) in &acked {
            let session = store
                .get_session(id)
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("acknowledged session {id} lost"));
            let connector = u32::try_from(connector).expect("connector");
            assert_eq!(
                (session.connector_id, session.started_at),
                (connector, at(ms))
            );
            let replay = store
                .start_session(&start16("CP1", connector, ms, ms))
                .await
                .expect("replay");
            assert!(!replay.created);
            assert_eq!(replay.session.id, id);
        }
    });
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child process of `acknowledged_writes_survive_kill_9`; without its environment variable
/// it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writes_until_killed() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let store = Arc::new(SqliteStore::open_dir(std::path::Path::new(&dir)).expect("open"));
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    // Several writers at once, so batches of more than one job are committed too.
    for connector in 1..=8u32 {
        let (store, acks) = (store.clone(), acks.clone());
        tokio::spawn(async move {
            for ms in 0.. {
                let started = store
                    .start_session(&start16("CP1", connector, ms, ms))
                    .await
                    .expect("start");
                if acks.send((started.session.id, connector, ms)).is_err() {
                    return;
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some((id, connector, ms)) = acked.recv().await {
        writeln!(out, "acked {id} {connector} {ms}").expect("write");
        out.flush().expect("flush");
    }
}

#[tokio::test]
async fn reopening_a_migrated_file_is_a_no_op() {
    let dir = temp_dir();
    let path = dir.join("nested").join("deeper").join("store.sqlite3");
    drop(SqliteStore::open(&path).expect("create with parents"));
    let store = SqliteStore::open(&path).expect("reopen");
    store
        .upsert_station(&station("S1"))
        .await
        .expect("usable after reopen");
    drop(store);

    let conn = rusqlite::Connection::open(&path).expect("inspect");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    // Every migration applied exactly once, in order.
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
    assert!(versions.len() >= 2, "{versions:?}");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused() {
    let dir = temp_dir();
    drop(SqliteStore::open_dir(&dir).expect("create"));
    let path = dir.join(chargeops_store::sqlite::FILE_NAME);
    rusqlite::Connection::open(&path)
        .expect("inspect")
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
            [],
        )
        .expect("pretend a newer build migrated it");

    let err = SqliteStore::open(&path).expect_err("must refuse");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("999"), "{err}");
}

#[tokio::test]
async fn timestamps_keep_milliseconds() {
    let store = make_store().await;
    store.upsert_station(&station("S1")).await.expect("station");
    store
        .insert_charger(&charger("CP1", "S1"))
        .await
        .expect("charger");
    // Sub-millisecond precision is dropped, and what start returns already says so.
    let precise = at(1_234) + chrono::Duration::microseconds(567);
    let new = chargeops_core::NewSession {
        started_at: precise,
        ..start16("CP1", 1, 0, 0)
    };
    let started = store.start_session(&new).await.expect("start");
    assert_eq!(started.session.started_at, at(1_234));
    assert_eq!(
        store.get_session(started.session.id).await.expect("get"),
        Some(started.session.clone())
    );
    // And the replay with the same precise time still matches.
    assert!(!store.start_session(&new).await.expect("again").created);
}
