//! The PostgreSQL backend: the conformance suite, plus what only a server can show (data kept
//! across reconnects, migrations, schemas side by side, connections the server closed, clear
//! connection errors).
//!
//! The server comes from `CHARGEOPS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, what .ci/run starts). A server that cannot be
//! reached fails the tests; it is not a reason to skip them. Each store gets a schema of its
//! own (`t_<unix seconds>_<pid>_<n>`), so runs can overlap; the tests here drop theirs, and the
//! conformance cases' schemas (the suite gives no hook after a case) are swept by the next run:
//! at once when the process that made them has ended, else after ten minutes.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use chargeops_store::postgres::redact_url;
use chargeops_store::suite::{self, at, charger, start16, station};
use chargeops_store::{ErrorKind, PostgresStore, Store};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Schemas of earlier runs older than this are dropped.
const SWEEP_AFTER: Duration = Duration::from_secs(600);

fn url() -> String {
    std::env::var("CHARGEOPS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unique_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_{}_{}_{}",
        unix_secs(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn unreachable(e: impl std::fmt::Display) -> ! {
    panic!(
        "the PostgreSQL test server at {} is not reachable: {e}\n\
         start it (.ci/run does: ensure_postgres) or point CHARGEOPS_TEST_POSTGRES_URL at one",
        redact_url(&url())
    )
}

/// A plain connection for looking behind the store's back.
async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| unreachable(e));
    tokio::spawn(connection);
    client
}

async fn drop_schema(schema: &str) {
    admin()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop test schema");
}

/// Drops the schemas that earlier runs left behind, once per test process.
async fn sweep() {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let client = admin().await;
    let names: Vec<String> = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^(t|it)_[0-9]+_'",
            &[],
        )
        .await
        .expect("list test schemas")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let now = unix_secs();
    for name in names {
        let mut parts = name.split('_').skip(1).map(|s| s.parse::<u64>().ok());
        let (made, pid) = (parts.next().flatten(), parts.next().flatten());
        let age = now.saturating_sub(made.unwrap_or(now));
        // A run on this machine that has ended is done with its schemas; a run elsewhere (or
        // one whose process we cannot see) is given ten minutes.
        let ended = pid.is_some_and(|pid| {
            pid != u64::from(std::process::id())
                && Path::new("/proc/self").exists()
                && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if age > SWEEP_AFTER.as_secs() || (ended && age > 60) {
            // Another run may be sweeping the same one; either drop will do.
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

async fn open(schema: &str) -> PostgresStore {
    PostgresStore::connect_with_schema(&url(), schema)
        .await
        .unwrap_or_else(|e| unreachable(e))
}

async fn make_store() -> PostgresStore {
    sweep().await;
    open(&unique_schema()).await
}

chargeops_store::store_conformance_suite!(async { make_store().await });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reconnect() {
    let schema = unique_schema();
    let store = open(&schema).await;
    let written = suite::write_before_reopen(&store).await;
    drop(store);

    let store = open(&schema).await;
    suite::check_after_reopen(&store, &written).await;
    drop(store);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn reopening_a_migrated_schema_is_a_no_op() {
    let schema = unique_schema();
    drop(open(&schema).await);
    // Two stores opening the same schema at once (two nodes starting) both succeed.
    let (a, b) = tokio::join!(open(&schema), open(&schema));
    a.upsert_station(&station("S1"))
        .await
        .expect("usable after reopen");
    assert_eq!(
        b.get_station("S1").await.expect("same data"),
        Some(station("S1"))
    );
    drop((a, b));

    let client = admin().await;
    let versions: Vec<i64> = client
        .query(
            &format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .expect("read migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Every migration applied exactly once, in order, the same versions as SQLite's.
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
    assert!(versions.len() >= 5, "{versions:?}");
    drop_schema(&schema).await;
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    let schema = unique_schema();
    drop(open(&schema).await);
    admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES (999, 'future')"
        ))
        .await
        .expect("pretend a newer build migrated it");

    let err = PostgresStore::connect_with_schema(&url(), &schema)
        .await
        .expect_err("must refuse");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("999"), "{err}");
    drop_schema(&schema).await;
}

#[tokio::test]
async fn schemas_keep_stores_apart() {
    let (one, two) = (unique_schema(), unique_schema());
    let a = open(&one).await;
    let b = open(&two).await;
    a.upsert_station(&station("S1")).await.expect("station");
    assert_eq!(b.list_stations().await.expect("list"), vec![]);
    assert_eq!(a.schema(), Some(one.as_str()));
    drop((a, b));
    drop_schema(&one).await;
    drop_schema(&two).await;
}

#[tokio::test]
async fn timestamps_keep_milliseconds() {
    let schema = unique_schema();
    let store = open(&schema).await;
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
    drop(store);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn text_with_a_nul_character_is_invalid_not_a_crash() {
    let schema = unique_schema();
    let store = open(&schema).await;
    let mut s = station("S1");
    s.name = "nul\u{0}inside".into();
    let err = store
        .upsert_station(&s)
        .await
        .expect_err("postgres refuses NUL");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    // The connection it failed on is still good.
    store
        .upsert_station(&station("S1"))
        .await
        .expect("next write");
    drop(store);
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_replaced() {
    let schema = unique_schema();
    let app = format!("chargeops-{schema}");
    let with_name = if url().contains('?') {
        format!("{}&application_name={app}", url())
    } else {
        format!("{}?application_name={app}", url())
    };
    let store = PostgresStore::connect_with_schema(&with_name, &schema)
        .await
        .unwrap_or_else(|e| unreachable(e));
    store.upsert_station(&station("S1")).await.expect("station");

    // An administrator (or a failover) ends every connection the store holds.
    let killed: i64 = admin()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1);

    // A call that meets a connection not yet known to be dead fails, as any call to a lost
    // server does; the pool opens fresh connections for the next.
    let mut failures = 0;
    let got = loop {
        match store.get_station("S1").await {
            Ok(got) => break got,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
                failures += 1;
                assert!(failures < 50, "the pool never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(got, Some(station("S1")));
    drop(store);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn connection_errors_name_the_server_but_not_the_password() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("postgres://chargeops:hunter2secret@127.0.0.1:{port}/test");
    let err = PostgresStore::connect(&url)
        .await
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Backend, "{text}");
    assert!(
        text.contains(&format!("postgres://chargeops@127.0.0.1:{port}/test")),
        "{text}"
    );
    assert!(text.contains("connect"), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");

    let err = PostgresStore::connect("postgres://x:hunter2secret@127.0.0.1:notaport/test")
        .await
        .expect_err("bad url");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(!err.to_string().contains("hunter2secret"), "{err}");

    let err = PostgresStore::connect_with_schema(&self::url(), "no-dashes")
        .await
        .expect_err("bad schema");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}
