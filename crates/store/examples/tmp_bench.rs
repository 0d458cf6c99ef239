use std::sync::Arc;
use std::time::Instant;
use chargeops_core::ConnectorStatus;
use chargeops_store::suite::{charger, state, station, start16};
use chargeops_store::{SqliteStore, Store};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("chargeops-bench-{}", std::process::id()));
    let store = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    store.upsert_station(&station("S1")).await.unwrap();
    for i in 0..2000 { store.insert_charger(&charger(&format!("CP{i}"), "S1")).await.unwrap(); }
    for conc in [1usize, 64, 1024, 8192] {
        let n = if conc == 1 { 300 } else { 50_000 };
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..conc {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while i < n {
                    store.record_status(&format!("CP{}", i % 2000), &state((i / 2000) as u32 % 4 + 1, ConnectorStatus::Charging, (conc * 1_000_000 + i) as i64)).await.unwrap();
                    i += conc;
                }
            }));
        }
        for t in tasks { t.await.unwrap(); }
        let e = t.elapsed();
        println!("record_status conc={conc} n={n}: {:?} => {:.0}/s", e, n as f64 / e.as_secs_f64());
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..1024usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..20 {
                store.start_session(&start16(&format!("CP{}", w % 2000), 1, (w * 100 + k) as i64, 0)).await.unwrap();
            }
        }));
    }
    for t in tasks { t.await.unwrap(); }
    println!("start_session 20480 conc=1024: {:?}", t.elapsed());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..256usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { for _ in 0..100 { store.get_charger(&format!("CP{}", w)).await.unwrap(); } }));
    }
    for t in tasks { t.await.unwrap(); }
    println!("get_charger 25600 conc=256: {:?}", t.elapsed());
    let t = Instant::now();
    let c = store.list_connectors().await.unwrap();
    println!("list_connectors {} rows: {:?}", c.len(), t.elapsed());
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}
