//! The duties lease against a real NATS server with JetStream (CHARGEOPS_TEST_NATS_URL, by
//! default nats://127.0.0.1:4222, which `.ci/run` starts): one holder at a time, a holder that
//! stops renewing fences itself before the entry ages out, the next node takes it only after,
//! the old holder's renewal is then refused, and a release hands it over at once.

use std::time::{Duration, Instant};

use chargeops_gateway::cluster::lease::{self, DUTIES, FENCE, Lease, RENEW, TTL};

async fn js() -> async_nats::jetstream::Context {
    let url = std::env::var("CHARGEOPS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = async_nats::connect(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("NATS at {url} is not reachable ({e}); .ci/run starts it"));
    async_nats::jetstream::new(client)
}

#[tokio::test]
async fn one_holder_fenced_before_the_next_and_refused_after() {
    let js = js().await;
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    let cluster = format!(
        "lt-{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        b[0],
        b[1],
        b[2]
    );
    let kv = lease::bucket(&js, &cluster)
        .await
        .expect("the lease bucket");

    let a = Lease::new(DUTIES, "node-a", "boot-a");
    let b = Lease::new(DUTIES, "node-b", "boot-b");
    assert!(a.round(&kv).await, "the first asker takes it");
    assert!(*a.watch().borrow());
    assert!(!b.round(&kv).await, "one holder");
    assert_eq!(b.holder().as_deref(), Some("node-a"));
    for _ in 0..3 {
        tokio::time::sleep(RENEW).await;
        assert!(a.round(&kv).await, "renewed");
        assert!(!b.round(&kv).await);
    }

    // A is cut off: it renews no more. By its clock alone it stops holding after FENCE.
    let cut = Instant::now();
    tokio::time::sleep(FENCE + Duration::from_millis(50)).await;
    a.tick();
    assert!(!a.holds() && !*a.watch().borrow(), "fenced");
    // B gets it only once the entry has aged out on the server: after A fenced itself.
    let taken = loop {
        if b.round(&kv).await {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < TTL * 3,
            "the lease never moved ({:?})",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        taken >= FENCE,
        "taken over before the old holder fenced itself: {taken:?}"
    );
    assert!(
        taken < TTL * 2,
        "taken over {taken:?} after the last renewal"
    );

    // A comes back: its renewal is refused; it follows B.
    assert!(!a.round(&kv).await);
    assert!(!a.round(&kv).await);
    assert_eq!(a.holder().as_deref(), Some("node-b"));

    // B lets go (a clean stop): A takes it at its next round.
    b.release(&kv).await;
    assert!(!b.holds());
    assert!(a.round(&kv).await, "released: taken at once");
    let _ = js
        .delete_stream(format!("KV_{}", lease::bucket_name(&cluster)))
        .await;
}

#[tokio::test]
async fn a_node_id_in_use_is_a_clash_and_a_dead_ones_is_waited_out() {
    let js = js().await;
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    let cluster = format!("lt-id-{}-{:02x}{:02x}", std::process::id(), b[0], b[1]);
    let kv = lease::bucket(&js, &cluster)
        .await
        .expect("the lease bucket");
    let key = "node.gw-1";
    let first = Lease::new(key, "gw-1", "first");
    lease::claim_node_id(&kv, &first).await.expect("free id");
    // A second process with the same id, while the first renews: a clash.
    let kv2 = kv.clone();
    let renewing = tokio::spawn(async move {
        for _ in 0..20 {
            first.round(&kv2).await;
            tokio::time::sleep(RENEW / 2).await;
        }
    });
    let second = Lease::new(key, "gw-1", "second");
    let clash = lease::claim_node_id(&kv, &second)
        .await
        .expect_err("a clash");
    assert_eq!(clash.0.boot, "first");
    renewing.abort();
    // The first is gone (killed): the next start waits its entry out and takes the id.
    let third = Lease::new(key, "gw-1", "third");
    let t0 = Instant::now();
    lease::claim_node_id(&kv, &third)
        .await
        .expect("taken after the dead one aged out");
    assert!(
        third.holds() && t0.elapsed() < TTL * 2,
        "{:?}",
        t0.elapsed()
    );
    let _ = js
        .delete_stream(format!("KV_{}", lease::bucket_name(&cluster)))
        .await;
}
