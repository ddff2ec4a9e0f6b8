//! The Publish side of a subscription, without the client library's per-item bookkeeping.
//!
//! The library keeps a map entry of several hundred bytes per monitored item (and its hash
//! table grows to twice the items while they are created); the gateway needs none of it: the
//! client handle of an item is its tag index + 1. So subscriptions and monitored items are
//! made with the raw services, and [`run`] keeps Publish requests outstanding, hands every
//! notification message to the caller and acknowledges it with the next request.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use opcua::client::Session;
use opcua::client::UARequest;
use opcua::client::services::{CreateSubscription, Publish};
use opcua::types::{NotificationMessage, StatusCode, SubscriptionAcknowledgement};
use std::time::Duration;

/// Publish requests kept waiting at the server, at most: one per subscription and one spare,
/// so that a server answering for one subscription always holds one for the next.
const MAX_OUTSTANDING: usize = 8;

/// Creates a subscription publishing every `interval`: kept by the server ~30 intervals
/// without a client, with a keep-alive every 10. Returns its id.
pub async fn create_subscription(session: &Session, interval: Duration) -> Result<u32, StatusCode> {
    CreateSubscription::new(session)
        .publishing_interval(interval)
        .max_lifetime_count(30)
        .max_keep_alive_count(10)
        .max_notifications_per_publish(0)
        .publishing_enabled(true)
        .priority(0)
        .send(session.channel())
        .await
        .map(|r| r.subscription_id)
        .map_err(|e| e.status())
}

/// Keeps Publish requests outstanding for `subscriptions` subscriptions and hands every
/// message that carries notifications to `deliver`, until a request fails for a reason other
/// than waiting too long; returns that reason.
pub async fn run(
    session: &Session,
    subscriptions: usize,
    mut deliver: impl FnMut(NotificationMessage),
) -> StatusCode {
    let mut target = (subscriptions + 1).clamp(2, MAX_OUTSTANDING);
    let mut acks: Vec<SubscriptionAcknowledgement> = Vec::new();
    let mut waiting = FuturesUnordered::new();
    loop {
        while waiting.len() < target {
            let request = Publish::new(session).acks(std::mem::take(&mut acks));
            waiting.push(request.send(session.channel()));
        }
        let Some(answer) = waiting.next().await else {
            continue;
        };
        match answer {
            Ok(response) => {
                let message = response.notification_message;
                // A keep-alive carries no data and is not acknowledged.
                if message
                    .notification_data
                    .as_ref()
                    .is_some_and(|d| !d.is_empty())
                {
                    acks.push(SubscriptionAcknowledgement {
                        subscription_id: response.subscription_id,
                        sequence_number: message.sequence_number,
                    });
                    deliver(message);
                }
            }
            Err(e) => match e.status() {
                // The server holds fewer requests than asked: keep what it takes.
                StatusCode::BadTooManyPublishRequests => target = waiting.len().max(1),
                // A request the server held longer than the client waits: ask again (a dead
                // connection is noticed by the session's keep-alive).
                StatusCode::BadTimeout => {}
                other => return other,
            },
        }
    }
}
