//! Events between nodes on a JetStream stream: at least once, deduplicated by id, and read
//! through a durable consumer of each node's own, so a node that was cut off or restarted (with
//! the same `--node-id`) goes on from its last acknowledged event.
//!
//! - Publishing: every event is sent with its id as `Nats-Msg-Id`; the server drops a repeat
//!   within the stream's duplicate window, so an event whose acknowledgement was lost is simply
//!   sent again. Events wait in an outbox (bounded) until the stream has them: while NATS is
//!   away they pile up there, and go out in order when it is back.
//! - Reading: a pull consumer `node-<id>` with explicit acks; an event seen before (a
//!   redelivery) is acknowledged and not applied twice.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

/// How long the stream keeps events: the longest outage a node catches up from by replay (the
/// resync covers longer ones).
const KEEP: Duration = Duration::from_secs(3600);
/// The server drops a repeated id within this window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Events the stream keeps at most (a few hundred bytes each). A count, not bytes: a byte
/// limit is reserved from the server's JetStream storage when the stream is made, and every
/// cluster on one server would take its share whether it used it or not.
const KEEP_MESSAGES: i64 = 5_000_000;
/// Events sent before their acknowledgements are awaited.
const WINDOW: usize = 256;
/// Events kept while the stream cannot take them; beyond, the oldest go (the resync repairs).
const OUTBOX_MAX: usize = 200_000;
/// Ids remembered for spotting redeliveries.
const SEEN_MAX: usize = 100_000;
/// A consumer of a node that never comes back is removed after this.
const CONSUMER_INACTIVE: Duration = Duration::from_secs(3600);
const RETRY: Duration = Duration::from_millis(500);

/// An event ready to go: its subject, id and encoded envelope.
pub(super) struct Out {
    pub subject: String,
    pub id: String,
    pub payload: Bytes,
}

/// The stream's name for cluster `name`.
pub(super) fn stream_name(cluster: &str) -> String {
    format!("{}_EVENTS", cluster.to_ascii_uppercase().replace('-', "_"))
}

/// Makes sure the stream exists (after every reconnect: the server may be a new one).
pub(super) async fn ensure(
    js: &jetstream::Context,
    cluster: &str,
) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: stream_name(cluster),
        subjects: vec![format!("{cluster}.events.>")],
        max_age: KEEP,
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        max_messages: KEEP_MESSAGES,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    })
    .await
    .map_err(|e| chargeops_core::error::chain(&e))
}

/// Sends the outbox's events to the stream, in order, each until the stream acknowledges it.
pub(super) async fn publish(
    js: jetstream::Context,
    mut rx: mpsc::Receiver<Out>,
    mut connected: watch::Receiver<bool>,
) {
    let mut outbox: VecDeque<Out> = VecDeque::new();
    let mut dropped = 0u64;
    loop {
        if outbox.is_empty() {
            match rx.recv().await {
                Some(out) => outbox.push_back(out),
                None => return,
            }
        }
        while let Ok(out) = rx.try_recv() {
            outbox.push_back(out);
        }
        while outbox.len() > OUTBOX_MAX {
            outbox.pop_front();
            dropped += 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "cluster outbox full while NATS is away: oldest events not shared (the next hello resyncs)"
                );
            }
        }
        if !*connected.borrow() {
            // Wait for the link, taking in new events meanwhile.
            tokio::select! {
                _ = connected.wait_for(|c| *c) => {}
                out = rx.recv() => match out {
                    Some(out) => outbox.push_back(out),
                    None => return,
                },
            }
            continue;
        }
        let n = outbox.len().min(WINDOW);
        let mut acks = Vec::with_capacity(n);
        for out in outbox.iter().take(n) {
            let publish = jetstream::context::Publish::build()
                .payload(out.payload.clone())
                .message_id(&out.id);
            match js.send_publish(out.subject.clone(), publish).await {
                Ok(ack) => acks.push(ack),
                Err(_) => break,
            }
        }
        let mut done = 0;
        let mut failed = None;
        for ack in acks {
            match ack.await {
                Ok(_) if failed.is_none() => done += 1,
                Ok(_) => {}
                Err(e) => {
                    failed.get_or_insert_with(|| chargeops_core::error::chain(&e));
                }
            }
        }
        // The ones after a failure go again too: the stream drops those it already has.
        outbox.drain(..done);
        if done < n {
            tracing::debug!(
                waiting = outbox.len(),
                error = failed.as_deref().unwrap_or("not sent"),
                "cluster events not acknowledged yet; sending again"
            );
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Ids of events already applied, the newest [`SEEN_MAX`].
#[derive(Default)]
pub(super) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Whether `id` is new (and remembers it).
    pub fn first(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_MAX
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// Reads the stream through this node's durable consumer and hands each event to `apply`,
/// acknowledging it after. Runs for the life of the process, across reconnects.
pub(super) async fn consume<F>(
    js: jetstream::Context,
    cluster: String,
    node: String,
    mut connected: watch::Receiver<bool>,
    apply: Arc<F>,
) where
    F: Fn(&[u8]) + Send + Sync + 'static,
{
    let durable = format!("node-{node}");
    let mut warned = false;
    loop {
        let _ = connected.wait_for(|c| *c).await;
        let stream = match ensure(&js, &cluster).await {
            Ok(s) => s,
            Err(error) => {
                if !warned {
                    tracing::error!(
                        %error,
                        "the cluster's event stream cannot be opened (NATS must run JetStream, nats-server -js, \
                         with room to store); events are not shared until it is"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy: consumer::DeliverPolicy::New,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    max_ack_pending: 20_000,
                    inactive_threshold: CONSUMER_INACTIVE,
                    ..Default::default()
                },
            )
            .await;
        let consumer: consumer::PullConsumer = match consumer {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(error = %chargeops_core::error::chain(&error), durable, "cluster event consumer not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(error = %chargeops_core::error::chain(&error), "cluster event stream not readable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if warned {
            tracing::info!("the cluster's event stream is open");
            warned = false;
        }
        tracing::debug!(durable, "reading cluster events");
        while let Some(next) = messages.next().await {
            match next {
                Ok(msg) => {
                    apply(&msg.payload);
                    if let Err(error) = msg.ack().await {
                        tracing::debug!(%error, "cluster event ack failed (it comes again)");
                    }
                }
                Err(error) => {
                    tracing::debug!(error = %chargeops_core::error::chain(&error), "cluster event stream interrupted");
                    if !*connected.borrow() {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_spotted_and_the_memory_is_bounded() {
        let mut seen = Seen::default();
        assert!(seen.first("a.1"));
        assert!(!seen.first("a.1"));
        for i in 0..SEEN_MAX + 10 {
            seen.first(&format!("b.{i}"));
        }
        assert!(seen.set.len() <= SEEN_MAX && seen.order.len() <= SEEN_MAX);
        assert!(seen.first("a.1"), "long forgotten");
        assert!(!seen.first(&format!("b.{}", SEEN_MAX + 9)));
    }

    #[test]
    fn stream_names_fit_jetstream() {
        assert_eq!(stream_name("chargeops"), "CHARGEOPS_EVENTS");
        assert_eq!(stream_name("it-a1"), "IT_A1_EVENTS");
    }
}
