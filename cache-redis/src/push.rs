//! Invalidation pushes for near caches: every bump publishes its tables on
//! `{namespace}:invalidations`, and a near cache's subscription task delivers them to its
//! [`InvalidationSink`].
//!
//! The task keeps the sink's contract: `connected` once `SUBSCRIBE` is confirmed (from
//! then on every publish reaches this connection), `disconnected` as soon as the
//! connection fails or a heartbeat is late, and `caught_up` when a heartbeat it published
//! the way bumps are published comes back (see [`session`]).

use std::time::Duration;

use std::time::Instant;

use cache_runtime::backend::{BackendError, InvalidationSink};
use futures_util::StreamExt;
use redis::Client;

use crate::RedisBackend;

/// How long the task waits between failed attempts to subscribe.
const RETRY: Duration = Duration::from_millis(200);

/// The namespace's channel (its Cluster slot does not matter: a classic publish reaches
/// every node).
pub(crate) fn channel(namespace: &str) -> String {
    format!("{{{namespace}}}:invalidations")
}

pub(crate) fn subscribe(
    backend: RedisBackend,
    namespace: String,
    sink: InvalidationSink,
) -> Result<(), BackendError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        BackendError::new("a near cache subscribes to Redis from inside a Tokio runtime")
    })?;
    if backend.inner.pubsub.is_empty() {
        return Err(BackendError::new("no Redis node to subscribe to"));
    }
    runtime.spawn(listen(backend, namespace, sink));
    Ok(())
}

/// Subscribes, and subscribes again (to the next node of a Cluster) whenever the
/// subscription fails or falls behind, until the cache is gone.
async fn listen(backend: RedisBackend, namespace: String, sink: InvalidationSink) {
    let clients = backend.inner.pubsub.clone();
    for client in clients.iter().cycle() {
        if !sink.is_live() || !session(&backend, client, &namespace, &sink).await {
            return;
        }
        if !sink.disconnected() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// What one message on the channel says.
enum Message {
    /// These tables were invalidated.
    Tables(Vec<String>),
    /// A heartbeat, with its nonce.
    Heartbeat(u64),
    /// Everything was cleared (or the message is not ours): drop every copy.
    Reset,
}

fn classify(payload: &[u8]) -> Message {
    if let Some(nonce) = payload.strip_prefix(HEARTBEAT) {
        return std::str::from_utf8(nonce)
            .ok()
            .and_then(|n| n.parse().ok())
            .map_or(Message::Reset, Message::Heartbeat);
    }
    parse(payload).map_or(Message::Reset, Message::Tables)
}

/// One subscription, until its connection fails or a heartbeat is late (`true`), or the
/// cache is gone (`false`).
///
/// The heartbeat is a publish by a script on the namespace's slot, where every bump script
/// runs and publishes: Redis (and a Cluster's bus, link by link) delivers one publisher's
/// messages in order, so when the heartbeat arrives here every bump published before it
/// was sent has been handled. A `PING` to the subscribed node would prove nothing about a
/// Cluster's other nodes.
async fn session(
    backend: &RedisBackend,
    client: &Client,
    namespace: &str,
    sink: &InvalidationSink,
) -> bool {
    let timeout = backend.inner.options.timeout;
    // Connecting may take longer than an operation's timeout, never for ever.
    let patience = timeout.max(Duration::from_secs(1));
    let Ok(Ok(pubsub)) = tokio::time::timeout(patience, client.get_async_pubsub()).await else {
        return true;
    };
    let (mut commands, mut messages) = pubsub.split();
    if !matches!(
        tokio::time::timeout(patience, commands.subscribe(channel(namespace))).await,
        Ok(Ok(()))
    ) {
        return true;
    }
    if !sink.connected() {
        return false;
    }
    let mut heartbeat = tokio::time::interval(sink.heartbeat());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The heartbeat in flight: its nonce, and when it was sent.
    let mut pending: Option<(u64, Instant)> = None;
    let mut nonce = 0_u64;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return true };
                let live = match classify(message.get_payload_bytes()) {
                    Message::Tables(tables) => {
                        let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
                        sink.invalidated(&tables)
                    }
                    Message::Heartbeat(n) => match pending {
                        Some((sent_nonce, sent)) if sent_nonce == n => {
                            pending = None;
                            sink.caught_up(sent)
                        }
                        // Another instance's heartbeat: proves nothing about ours.
                        _ => true,
                    },
                    Message::Reset => sink.connected(),
                };
                if !live {
                    return false;
                }
            }
            _ = heartbeat.tick() => {
                // A cache dropped while Redis fails would otherwise keep this task alive.
                if !sink.is_live() {
                    return false;
                }
                match pending {
                    // Late: the subscription, or the bus to it, is behind. Start over.
                    Some((_, sent)) if sent.elapsed() > patience => return true,
                    Some(_) => {}
                    None => {
                        nonce = nonce.wrapping_add(1);
                        let id = (u64::from(std::process::id()) << 32) ^ nonce;
                        let sent = Instant::now();
                        // A failed publish proves nothing: the lease runs out unrenewed.
                        if backend.publish_heartbeat(namespace, id).await.is_ok() {
                            pending = Some((id, sent));
                        }
                    }
                }
            }
        }
    }
}

/// The payload prefix of a heartbeat (a table list starts with a digit).
pub(crate) const HEARTBEAT: &[u8] = b"!hb:";
/// The payload of a reset: every copy goes (`Cache::clear`).
pub(crate) const RESET: &str = "!reset";

/// `<length>:<name>` repeated, as the bump script writes it.
fn parse(mut payload: &[u8]) -> Option<Vec<String>> {
    let mut tables = Vec::new();
    while !payload.is_empty() {
        let colon = payload.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&payload[..colon]).ok()?.parse().ok()?;
        let rest = &payload[colon + 1..];
        let name = rest.get(..len)?;
        tables.push(String::from_utf8(name.to_vec()).ok()?);
        payload = &rest[len..];
    }
    Some(tables)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn heartbeats_and_resets_are_told_apart_from_tables() {
        use super::{Message, classify};
        assert!(matches!(classify(b"!hb:42"), Message::Heartbeat(42)));
        assert!(matches!(classify(b"!hb:x"), Message::Reset));
        assert!(matches!(classify(b"!reset"), Message::Reset));
        assert!(matches!(classify(b"5:users"), Message::Tables(t) if t == ["users"]));
        assert!(matches!(classify(b"hello"), Message::Reset));
    }

    #[test]
    fn messages_read_back_whole_whatever_the_names() {
        assert_eq!(
            parse(b"5:users12:public.users4:a:b:0:").unwrap(),
            ["users", "public.users", "a:b:", ""]
        );
        assert_eq!(parse(b"").unwrap(), Vec::<String>::new());
        for bad in [&b"5:use"[..], b"x:users", b"users", b"2:\xff\xfe"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
