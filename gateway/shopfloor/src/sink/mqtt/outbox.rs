//! The outbox of the MQTT sink: every message from the moment it is queued until the broker
//! acknowledged it. Protocol state only, no I/O (as rumqtt keeps its `state.rs`).
//!
//! rumqttc reports, in the order it sends them, `Outgoing::Publish(pkid)` for every publish it
//! writes, then `PubAck(pkid)` when the broker takes a QoS 1 message. The outbox pairs the two
//! to know which of its messages a packet id stands for.
//!
//! # Invariants
//! 1. A message is in exactly one of: `queue` (not yet handed to rumqttc), `handed` (handed,
//!    packet id not yet known), `inflight` (sent at QoS 1, waiting for PUBACK).
//! 2. Messages are handed in `id` order, and `handed` is in `id` order, so the n-th
//!    `Outgoing::Publish` event belongs to the n-th message of `handed`.
//! 3. A QoS 1 message leaves the outbox only on its PUBACK; a QoS 0 message once written.
//! 4. On a new connection (the sink always asks for a clean session, so rumqttc forgets what it
//!    held) every handed and in-flight message goes back to the front of `queue`, in `id`
//!    order: nothing unacknowledged is forgotten; duplicates come only from the in-flight window.
//! 5. `len()` never exceeds `capacity`: when full, the oldest queued messages are dropped and
//!    counted.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One MQTT message: a draft with the order the outbox gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Order of queueing.
    pub id: u64,
    /// Everything else.
    pub draft: Draft,
}

/// A message to queue: everything but the id the outbox gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Topic.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// 0 or 1.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
    /// The samples it carries.
    pub weight: u64,
    /// Its record in the disk spool.
    pub spool: Option<u64>,
}

/// See the module doc.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Message>,
    handed: VecDeque<Message>,
    inflight: HashMap<u16, Message>,
    next_id: u64,
    capacity: usize,
    window: usize,
    dropped: u64,
    acked: u64,
}

impl Outbox {
    /// An outbox holding at most `capacity` messages, with at most `window` handed to the
    /// client at once.
    pub fn new(capacity: usize, window: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            next_id: 0,
            capacity: capacity.max(1),
            window: window.max(1),
            dropped: 0,
            acked: 0,
        }
    }

    /// Queues a message; returns the weight of the old messages dropped to make room (and of
    /// this one when nothing could give way).
    pub fn push(&mut self, d: Draft) -> u64 {
        let mut dropped = 0;
        while self.len() >= self.capacity {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.dropped += 1;
            dropped += old.draft.weight;
        }
        if self.len() >= self.capacity {
            // Everything left is handed or in flight: the newest must give way.
            self.dropped += 1;
            return dropped + d.weight;
        }
        self.queue.push_back(Message {
            id: self.next_id,
            draft: d,
        });
        self.next_id += 1;
        dropped
    }

    /// Messages not yet handed to the client.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next message to hand to the client, if the window allows; it moves to `handed`.
    pub fn next_to_send(&mut self) -> Option<&Message> {
        if self.handed.len() + self.inflight.len() >= self.window {
            return None;
        }
        let m = self.queue.pop_front()?;
        self.handed.push_back(m);
        self.handed.back()
    }

    /// The client wrote a publish with packet id `pkid` (0 for QoS 0); a QoS 0 message is
    /// delivered with that and returned.
    pub fn on_sent(&mut self, pkid: u16) -> Option<Message> {
        let m = self.handed.pop_front()?;
        if m.draft.qos == 0 {
            self.acked += 1;
            Some(m)
        } else {
            self.inflight.insert(pkid, m);
            None
        }
    }

    /// The broker acknowledged packet `pkid`: the message it was, if one was waiting for it.
    pub fn on_ack(&mut self, pkid: u16) -> Option<Message> {
        let m = self.inflight.remove(&pkid)?;
        self.acked += 1;
        Some(m)
    }

    /// A new connection: everything unacknowledged goes back to the queue, in order.
    pub fn on_reconnect(&mut self) {
        let mut back: Vec<Message> = self.inflight.drain().map(|(_, m)| m).collect();
        back.extend(self.handed.drain(..));
        back.sort_by_key(|m| m.id);
        for m in back.into_iter().rev() {
            self.queue.push_front(m);
        }
    }

    /// Messages held, in every state.
    pub fn len(&self) -> usize {
        self.queue.len() + self.handed.len() + self.inflight.len()
    }

    /// The samples held, in every state.
    pub fn weight(&self) -> u64 {
        let w = |m: &Message| m.draft.weight;
        self.queue.iter().map(w).sum::<u64>()
            + self.handed.iter().map(w).sum::<u64>()
            + self.inflight.values().map(w).sum::<u64>()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages delivered (QoS 1 acknowledged, QoS 0 written).
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(o: &mut Outbox, n: u64, qos: u8) {
        for i in 0..n {
            o.push(Draft {
                topic: Arc::from("t"),
                payload: Bytes::from(i.to_string()),
                qos,
                retain: false,
                weight: 1,
                spool: None,
            });
        }
    }

    fn send_all(o: &mut Outbox) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Some(m) = o.next_to_send() {
            ids.push(m.id);
        }
        ids
    }

    #[test]
    fn acked_messages_leave_and_others_are_resent_in_order() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 5, 1);
        assert_eq!(send_all(&mut o), vec![0, 1, 2, 3, 4]);
        for pkid in 1..=4 {
            o.on_sent(pkid); // ids 0..=3 written as pkids 1..=4; id 4 still handed
        }
        assert_eq!(o.on_ack(2).map(|m| m.id), Some(1));
        assert!(o.on_ack(2).is_none());
        assert_eq!(o.len(), 4);
        o.on_reconnect();
        assert_eq!(send_all(&mut o), vec![0, 2, 3, 4]);
        assert_eq!(o.acked(), 1);
    }

    #[test]
    fn the_window_limits_what_is_handed() {
        let mut o = Outbox::new(100, 3);
        push(&mut o, 5, 1);
        assert_eq!(send_all(&mut o), vec![0, 1, 2]);
        o.on_sent(1);
        o.on_ack(1);
        assert_eq!(send_all(&mut o), vec![3]);
    }

    #[test]
    fn qos0_leaves_once_written() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 2, 0);
        send_all(&mut o);
        o.on_sent(0);
        o.on_sent(0);
        assert!(o.is_empty());
        assert_eq!(o.acked(), 2);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_queued_and_counts() {
        let mut o = Outbox::new(3, 1);
        push(&mut o, 1, 1);
        send_all(&mut o); // id 0 handed
        push(&mut o, 4, 1); // ids 1..=4, room for 2 queued
        assert_eq!(o.len(), 3);
        assert_eq!(o.dropped(), 2);
        o.on_sent(9);
        o.on_ack(9);
        let mut left = Vec::new();
        while let Some(m) = o.next_to_send() {
            left.push(m.id);
            o.on_sent(10);
            o.on_ack(10);
        }
        assert_eq!(left, vec![3, 4]);
    }
}
