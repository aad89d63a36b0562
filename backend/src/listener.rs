//! This instance's one Redis pub/sub connection: replies addressed to it
//! (completing deferred responses) and the seat feeds of every event (fanned
//! out to its open SSE streams).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxoffice_platform::cache::Keys;
use boxoffice_platform::views::Reply;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::waiters::Waiters;

/// Live seat changes per event, for this instance's SSE streams.
#[derive(Default)]
pub struct SeatFeeds {
    senders: Mutex<HashMap<Uuid, broadcast::Sender<String>>>,
}

impl SeatFeeds {
    pub fn subscribe(&self, event: Uuid) -> broadcast::Receiver<String> {
        self.senders
            .lock()
            .expect("feeds lock")
            .entry(event)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    fn publish(&self, event: Uuid, message: String) {
        let mut senders = self.senders.lock().expect("feeds lock");
        if let Some(tx) = senders.get(&event)
            && tx.send(message).is_err()
        {
            // Nobody watches this event any more.
            senders.remove(&event);
        }
    }
}

/// Listens until `stop`, reconnecting after errors; `connected` tells
/// readiness whether replies can arrive.
pub async fn run(
    redis_url: String,
    keys: Keys,
    instance: String,
    waiters: Arc<Waiters>,
    feeds: Arc<SeatFeeds>,
    connected: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let replies = keys.replies(&instance);
    let feed_prefix = keys.seat_feed("");
    while !stop.is_cancelled() {
        let result = listen(
            &redis_url,
            &replies,
            &feed_prefix,
            &waiters,
            &feeds,
            &connected,
            &stop,
        )
        .await;
        connected.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::error!(error = %e, "reply listener lost Redis; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

async fn listen(
    redis_url: &str,
    replies: &str,
    feed_prefix: &str,
    waiters: &Waiters,
    feeds: &SeatFeeds,
    connected: &AtomicBool,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(replies).await?;
    pubsub.psubscribe(format!("{feed_prefix}*")).await?;
    connected.store(true, Ordering::Relaxed);
    tracing::info!(channel = replies, "listening for replies and seat feeds");
    let mut messages = pubsub.on_message();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = messages.next() => m.ok_or_else(|| anyhow::anyhow!("pub/sub connection closed"))?,
        };
        let channel = msg.get_channel_name().to_owned();
        let payload: String = match msg.get_payload() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, channel, "unreadable pub/sub message");
                continue;
            }
        };
        if channel == replies {
            match serde_json::from_str::<Reply>(&payload) {
                Ok(reply) => {
                    let span = tracing::info_span!("reply to api", otel.kind = "consumer", subject = %reply.subject);
                    boxoffice_platform::trace::continue_from(&span, &reply.trace);
                    span.in_scope(|| waiters.deliver(reply));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable reply"),
            }
        } else if let Some(event) = channel
            .strip_prefix(feed_prefix)
            .and_then(|e| e.parse().ok())
        {
            feeds.publish(event, payload);
        }
    }
}
