//! Leases in a JetStream key-value bucket: who runs the platform's background duties, and
//! which node answers to a node id.
//!
//! A lease is a key whose entries age out after [`TTL`] (the bucket's `max_age`, kept by the
//! server). The holder renews it every [`RENEW`] with a compare-and-set on its revision; anyone
//! else tries to create it, which succeeds only once it is gone. So there is one holder, and a
//! holder that dies or is cut off is replaced about [`TTL`] after its last renewal.
//!
//! Fencing: a holder counts itself a holder only while its last successful renewal was sent
//! less than [`FENCE`] ago (`FENCE < TTL`, both measured from the sending of the renewal, so
//! before the server's clock could start it). A node cut off from NATS therefore stops its
//! duties, and refuses to write their results ([`Leases::holds`]), before another node can take
//! the lease; a renewal refused for a stale revision ends the lease at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub const TTL: Duration = Duration::from_secs(5);
pub const RENEW: Duration = Duration::from_secs(1);
pub const FENCE: Duration = Duration::from_millis(3500);
/// The lease the background duties run under.
pub const DUTIES: &str = "duties";

/// A lease's entry: the holder and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub node: String,
    /// The holding process (a restarted node is another one).
    pub boot: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct State {
    /// The revision of our entry while we hold it.
    revision: Option<u64>,
    /// When the last renewal that succeeded was sent.
    confirmed: Option<Instant>,
    /// Whom the entry names, as last read.
    holder: Option<Holder>,
}

/// One lease, as this node sees it.
pub struct Lease {
    key: String,
    me: Holder,
    state: Mutex<State>,
    /// Whether this node holds it (and may act on it), for the duties to follow.
    held: watch::Sender<bool>,
}

impl Lease {
    pub fn new(key: &str, node: &str, boot: &str) -> Lease {
        Lease {
            key: key.to_owned(),
            me: Holder {
                node: node.to_owned(),
                boot: boot.to_owned(),
                since: chrono::Utc::now(),
            },
            state: Mutex::default(),
            held: watch::channel(false).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node holds the lease now: renewed within [`FENCE`].
    pub fn holds(&self) -> bool {
        let s = self.state();
        s.revision.is_some() && s.confirmed.is_some_and(|t| t.elapsed() < FENCE)
    }

    /// The node named in the lease, as last read (this node's own name while it holds it).
    pub fn holder(&self) -> Option<String> {
        if self.holds() {
            return Some(self.me.node.clone());
        }
        self.state().holder.as_ref().map(|h| h.node.clone())
    }

    /// Follows whether this node holds the lease.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.held.subscribe()
    }

    fn set_held(&self, now: bool) {
        if self.held.send_replace(now) != now {
            if now {
                tracing::info!(lease = self.key, node = self.me.node, "lease taken");
            } else {
                tracing::warn!(lease = self.key, node = self.me.node, "lease lost");
            }
        }
    }

    /// The server has our entry at `revision`, written by the request sent at `sent`.
    fn confirm(&self, revision: u64, sent: Instant) {
        let mut s = self.state();
        s.revision = Some(revision);
        s.confirmed = Some(sent);
        s.holder = Some(self.me.clone());
    }

    /// One round: renew the lease if held, else try to take it. Returns whether it is held.
    pub async fn round(&self, kv: &kv::Store) -> bool {
        let sent = Instant::now();
        let value: Bytes = match serde_json::to_vec(&self.me) {
            Ok(v) => v.into(),
            Err(_) => return false,
        };
        let revision = self.state().revision;
        match revision {
            Some(revision) => match kv.update(&self.key, value, revision).await {
                Ok(next) => self.confirm(next, sent),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(
                        lease = self.key,
                        "lease renewal refused: another node took it"
                    );
                    let mut s = self.state();
                    s.revision = None;
                    s.confirmed = None;
                }
                Err(e) => {
                    tracing::debug!(lease = self.key, error = %e, "lease renewal failed; trying again");
                }
            },
            None => match kv.create(&self.key, value).await {
                Ok(rev) => self.confirm(rev, sent),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let holder = read(kv, &self.key).await;
                    self.state().holder = holder;
                }
                Err(e) => {
                    tracing::debug!(lease = self.key, error = %e, "lease not taken; trying again");
                }
            },
        }
        let held = self.holds();
        self.set_held(held);
        held
    }

    /// Lets go at once (a clean stop): the next node need not wait for the entry to age out.
    pub async fn release(&self, kv: &kv::Store) {
        let revision = self.state().revision.take();
        if let Some(revision) = revision {
            let _ = kv.delete_expect_revision(&self.key, Some(revision)).await;
        }
        self.set_held(false);
    }

    /// Re-reads the held flag against the clock (a holder cut off from NATS fences itself).
    pub fn tick(&self) {
        let held = self.holds();
        self.set_held(held);
    }
}

async fn read(kv: &kv::Store, key: &str) -> Option<Holder> {
    match kv.entry(key).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            serde_json::from_slice(&entry.value).ok()
        }
        _ => None,
    }
}

/// The bucket's name for cluster `name`.
pub fn bucket_name(cluster: &str) -> String {
    format!("{}_leases", cluster.replace('-', "_"))
}

/// Opens (or makes) the cluster's lease bucket. The bucket's stream is made here with the
/// key-value layout (`KV_<bucket>` on `$KV.<bucket>.>`, one entry a key, roll-ups allowed)
/// rather than through `create_key_value`, which reads account fields that NATS servers
/// before 2.10 do not send.
pub async fn bucket(js: &jetstream::Context, cluster: &str) -> Result<kv::Store, String> {
    let name = bucket_name(cluster);
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{name}"),
        description: Some("chargeops leases: the duties' holder and the nodes' ids".to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: TTL,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| chargeops_core::error::chain(&e))?;
    js.get_key_value(&name)
        .await
        .map_err(|e| chargeops_core::error::chain(&e))
}

/// Another running process holds `node`'s id.
#[derive(Debug, Clone, PartialEq)]
pub struct Clash(pub Holder);

/// Takes the key of node id `node` for this process, waiting for a dead predecessor's entry
/// to age out; a live one (it keeps renewing) is a clash.
pub async fn claim_node_id(kv: &kv::Store, lease: &Lease) -> Result<(), Clash> {
    let deadline = Instant::now() + TTL + RENEW * 2;
    let mut told = false;
    loop {
        if lease.round(kv).await {
            return Ok(());
        }
        let other = lease.state().holder.clone();
        match other {
            Some(h) if h.boot != lease.me.boot => {
                if Instant::now() >= deadline {
                    return Err(Clash(h));
                }
                if !told {
                    tracing::info!(
                        node = lease.me.node,
                        "node id held by another process (a predecessor?); waiting for it to age out"
                    );
                    told = true;
                }
            }
            _ if Instant::now() >= deadline => return Ok(()),
            _ => {}
        }
        tokio::time::sleep(RENEW / 2).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_lease_is_not_held() {
        let lease = Lease::new(DUTIES, "a", "1");
        assert!(!lease.holds());
        assert_eq!(lease.holder(), None);
        assert!(!*lease.watch().borrow());
        // A confirmation older than the fence does not count.
        {
            let mut s = lease.state();
            s.revision = Some(3);
            s.confirmed = Instant::now().checked_sub(FENCE + Duration::from_millis(1));
        }
        assert!(!lease.holds());
        lease.state().confirmed = Some(Instant::now());
        assert!(lease.holds());
        assert_eq!(lease.holder().as_deref(), Some("a"));
        const { assert!(FENCE.as_millis() < TTL.as_millis()) };
        assert_eq!(bucket_name("it-a"), "it_a_leases");
    }
}
