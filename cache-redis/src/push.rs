//! Invalidation pushes for near caches: every bump publishes its tables on
//! `{namespace}:invalidations`, and a near cache's subscription task delivers them to its
//! [`InvalidationSink`].
//!
//! The task keeps the sink's contract: `connected` once `SUBSCRIBE` is confirmed (from
//! then on every publish reaches this connection), `disconnected` as soon as the
//! connection fails, and `caught_up` after each heartbeat `PING`. Redis answers a
//! connection's commands and delivers its messages in order, so every message published
//! before the `PONG` has been delivered, and handed to the sink, when the `PONG` arrives.

use std::time::Duration;

use cache_runtime::backend::{BackendError, InvalidationSink};
use futures_util::{FutureExt, StreamExt};
use redis::Client;

/// How long the task waits between failed attempts to subscribe.
const RETRY: Duration = Duration::from_millis(200);

/// The namespace's channel (its Cluster slot does not matter: a classic publish reaches
/// every node).
pub(crate) fn channel(namespace: &str) -> String {
    format!("{{{namespace}}}:invalidations")
}

pub(crate) fn subscribe(
    clients: Vec<Client>,
    channel: String,
    sink: InvalidationSink,
    timeout: Duration,
) -> Result<(), BackendError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        BackendError::new("a near cache subscribes to Redis from inside a Tokio runtime")
    })?;
    if clients.is_empty() {
        return Err(BackendError::new("no Redis node to subscribe to"));
    }
    runtime.spawn(listen(clients, channel, sink, timeout));
    Ok(())
}

/// Subscribes, and subscribes again (to the next node of a Cluster) whenever the
/// connection fails, until the cache is gone.
async fn listen(clients: Vec<Client>, channel: String, sink: InvalidationSink, timeout: Duration) {
    for client in clients.iter().cycle() {
        if !session(client, &channel, &sink, timeout).await {
            return;
        }
        if !sink.disconnected() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One subscription, until its connection fails (`true`) or the cache is gone (`false`).
async fn session(
    client: &Client,
    channel: &str,
    sink: &InvalidationSink,
    timeout: Duration,
) -> bool {
    // Connecting may take longer than an operation's timeout, never for ever.
    let patience = timeout.max(Duration::from_secs(1));
    let Ok(Ok(pubsub)) = tokio::time::timeout(patience, client.get_async_pubsub()).await else {
        return true;
    };
    let (mut commands, mut messages) = pubsub.split();
    if !matches!(
        tokio::time::timeout(patience, commands.subscribe(channel)).await,
        Ok(Ok(()))
    ) {
        return true;
    }
    if !sink.connected() {
        return false;
    }
    let mut heartbeat = tokio::time::interval(sink.heartbeat());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    if !deliver(sink, message.get_payload_bytes()) {
                        return false;
                    }
                }
                None => return true,
            },
            _ = heartbeat.tick() => {
                let sent = std::time::Instant::now();
                if !matches!(
                    tokio::time::timeout(patience, commands.ping::<redis::Value>()).await,
                    Ok(Ok(_))
                ) {
                    return true;
                }
                // Everything published before the PONG is queued on `messages` by now.
                while let Some(Some(message)) = messages.next().now_or_never() {
                    if !deliver(sink, message.get_payload_bytes()) {
                        return false;
                    }
                }
                if !sink.caught_up(sent) {
                    return false;
                }
            }
        }
    }
}

/// Hands one message's tables to the sink; one that does not parse (another program's
/// publish on the channel) drops every copy, as a reconnection does.
fn deliver(sink: &InvalidationSink, payload: &[u8]) -> bool {
    match parse(payload) {
        Some(tables) => {
            let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
            sink.invalidated(&tables)
        }
        None => sink.connected(),
    }
}

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
