//! The outbox of the MQTT sink: every message from the moment it is queued until the broker
//! acknowledged it. Protocol state only, no I/O (as rumqtt keeps its `state.rs`).
//!
//! # Invariants
//! 1. A message is in exactly one of: `queue` (not yet written), `written` (a QoS 0 message in
//!    the write buffer), `inflight` (a QoS 1 message written, waiting for its PUBACK).
//! 2. Messages are taken for writing in `id` order; a QoS 1 message gets a packet id no other
//!    in-flight message has.
//! 3. A QoS 1 message leaves the outbox only on its PUBACK; a QoS 0 message once written.
//! 4. On a new connection (the sink always asks for a clean session, so the broker forgets
//!    what it held) every written and in-flight message goes back to the front of `queue`, in
//!    `id` order: nothing unacknowledged is forgotten; duplicates come only from the in-flight
//!    window.
//! 5. `len()` never exceeds `capacity`: when full, the oldest queued messages are dropped and
//!    counted (or, under [`WhenFull::DropNewest`], the message being queued).
//! 6. A message that is the oldest written and unacknowledged one when [`SET_ASIDE_AFTER`]
//!    connections in a row end is taken out on the next connection and handed to the caller:
//!    a broker that drops every connection on which it reads one message (mosquitto does so
//!    with a packet above its `max_packet_size`) would otherwise hold the outbox forever.

use bytes::Bytes;
use shopfloor_core::ring::WhenFull;
use std::collections::hash_map::Entry;
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

/// Messages written and not yet acknowledged, at most, by default (`[mqtt] inflight`).
pub const WINDOW: usize = 1000;

/// Connections in a row that end with the same oldest unacknowledged message before it is
/// set aside.
pub const SET_ASIDE_AFTER: u8 = 3;

/// See the module doc.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Message>,
    written: VecDeque<Message>,
    inflight: HashMap<u16, Message>,
    next_id: u64,
    last_pkid: u16,
    capacity: usize,
    window: usize,
    dropped: u64,
    acked: u64,
    /// The oldest message unacknowledged when connections ended, and how many in a row.
    suspect: Option<(u64, u8)>,
    /// Packet ids another outbox has in flight on the same connection: never handed out.
    reserved: std::collections::HashSet<u16>,
    /// What goes when it is full.
    when_full: WhenFull,
}

impl Outbox {
    /// An outbox holding at most `capacity` messages, with at most `window` written and not
    /// yet acknowledged.
    pub fn new(capacity: usize, window: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            written: VecDeque::new(),
            inflight: HashMap::new(),
            next_id: 0,
            last_pkid: 0,
            capacity: capacity.max(1),
            // Fewer than the 65,535 packet ids, so a free one always exists.
            window: window.clamp(1, usize::from(u16::MAX) - 1),
            dropped: 0,
            acked: 0,
            suspect: None,
            reserved: std::collections::HashSet::new(),
            when_full: WhenFull::DropOldest,
        }
    }

    /// The same outbox, dropping as `when_full` says when full (the oldest queued by default).
    pub fn dropping(mut self, when_full: WhenFull) -> Outbox {
        self.when_full = when_full;
        self
    }

    /// An outbox for the same connection as `other`, whose packet ids it never reuses while
    /// `other`'s messages are in flight (the goodbye after the main outbox).
    pub fn beside(other: &Outbox, capacity: usize) -> Outbox {
        let mut o = Outbox::new(capacity, other.window);
        o.reserved = other.inflight.keys().copied().collect();
        let free = (usize::from(u16::MAX) - 1).saturating_sub(o.reserved.len());
        o.window = o.window.min(free).max(1);
        o
    }

    /// Queues a message; returns the weight of the old messages dropped to make room (and of
    /// this one when nothing could give way).
    pub fn push(&mut self, d: Draft) -> u64 {
        let mut dropped = 0;
        while self.len() >= self.capacity && self.when_full == WhenFull::DropOldest {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.dropped += 1;
            dropped += old.draft.weight;
        }
        if self.len() >= self.capacity {
            // Everything left is written or in flight, or the newest is to give way.
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

    /// Messages not yet written.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next message to write and its packet id (0 at QoS 0), if the window allows; it
    /// moves to `inflight` (QoS 1) or `written` (QoS 0).
    pub fn next_to_send(&mut self) -> Option<(u16, &Message)> {
        if self.written.len() + self.inflight.len() >= self.window {
            return None;
        }
        let m = self.queue.pop_front()?;
        if m.draft.qos == 0 {
            self.written.push_back(m);
            return self.written.back().map(|m| (0, m));
        }
        let pkid = self.free_pkid();
        match self.inflight.entry(pkid) {
            Entry::Vacant(slot) => Some((pkid, &*slot.insert(m))),
            Entry::Occupied(_) => {
                // free_pkid never returns a taken id; put the message back rather than lose it.
                self.queue.push_front(m);
                None
            }
        }
    }

    fn free_pkid(&mut self) -> u16 {
        loop {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.last_pkid)
                && !self.reserved.contains(&self.last_pkid)
            {
                return self.last_pkid;
            }
        }
    }

    /// The write buffer went out: the QoS 0 messages in it are delivered and returned.
    pub fn on_written(&mut self) -> std::collections::vec_deque::Drain<'_, Message> {
        self.acked += self.written.len() as u64;
        self.written.drain(..)
    }

    /// The broker acknowledged packet `pkid`: the message it was, if one was waiting for it.
    pub fn on_ack(&mut self, pkid: u16) -> Option<Message> {
        let m = self.inflight.remove(&pkid)?;
        self.acked += 1;
        if self.suspect.is_some_and(|(id, _)| id == m.id) {
            self.suspect = None;
        }
        Some(m)
    }

    /// A new connection: everything unacknowledged goes back to the queue, in order, but for
    /// a message the broker will not take (invariant 6), which is returned instead.
    pub fn on_reconnect(&mut self) -> Option<Message> {
        let mut back: Vec<Message> = self.inflight.drain().map(|(_, m)| m).collect();
        back.extend(self.written.drain(..));
        back.sort_by_key(|m| m.id);
        // The previous connection ended with `back[0]` the oldest it had not delivered.
        let set_aside = match back.first().map(|m| m.id) {
            Some(oldest) => {
                let times = match self.suspect {
                    Some((id, n)) if id == oldest => n + 1,
                    _ => 1,
                };
                self.suspect = Some((oldest, times));
                if times >= SET_ASIDE_AFTER {
                    self.suspect = None;
                    Some(back.remove(0))
                } else {
                    None
                }
            }
            // Nothing was written on it: no message to blame.
            None => {
                self.suspect = None;
                None
            }
        };
        for m in back.into_iter().rev() {
            self.queue.push_front(m);
        }
        set_aside
    }

    /// Messages held, in every state.
    pub fn len(&self) -> usize {
        self.queue.len() + self.written.len() + self.inflight.len()
    }

    /// The samples held in memory only (not in the disk spool), in every state.
    pub fn unspooled_weight(&self) -> u64 {
        let w = |m: &Message| {
            if m.draft.spool.is_none() {
                m.draft.weight
            } else {
                0
            }
        };
        self.queue.iter().map(w).sum::<u64>()
            + self.written.iter().map(w).sum::<u64>()
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
    use proptest::prelude::*;

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

    /// Writes what the window allows: (packet id, message id) in order.
    fn send_all(o: &mut Outbox) -> Vec<(u16, u64)> {
        let mut sent = Vec::new();
        while let Some((pkid, m)) = o.next_to_send() {
            sent.push((pkid, m.id));
        }
        sent
    }

    fn ids(sent: &[(u16, u64)]) -> Vec<u64> {
        sent.iter().map(|s| s.1).collect()
    }

    #[test]
    fn an_outbox_beside_another_never_takes_its_packet_ids_in_flight() {
        let mut main = Outbox::new(100, 10);
        push(&mut main, 5, 1);
        let taken: Vec<u16> = send_all(&mut main).iter().map(|s| s.0).collect();
        let mut goodbye = Outbox::beside(&main, 100);
        push(&mut goodbye, 20, 1);
        let mut seen = Vec::new();
        loop {
            let sent = send_all(&mut goodbye);
            if sent.is_empty() {
                break;
            }
            for (pkid, _) in sent {
                assert!(
                    !taken.contains(&pkid),
                    "{pkid} is in flight in the main outbox"
                );
                seen.push(pkid);
                goodbye.on_ack(pkid);
            }
        }
        assert_eq!(seen.len(), 20);
    }

    #[test]
    fn a_message_the_broker_drops_the_connection_on_is_set_aside_the_third_time() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 3, 1);
        // Connections that end with message 0 unacknowledged: twice it goes back.
        for _ in 1..SET_ASIDE_AFTER {
            assert_eq!(ids(&send_all(&mut o)), vec![0, 1, 2]);
            assert_eq!(o.on_reconnect(), None);
        }
        assert_eq!(ids(&send_all(&mut o)), vec![0, 1, 2]);
        assert_eq!(o.on_reconnect().map(|m| m.id), Some(0));
        assert_eq!(ids(&send_all(&mut o)), vec![1, 2]);
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn an_ack_or_a_quiet_connection_in_between_clears_the_suspicion() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 2, 1);
        for _ in 1..SET_ASIDE_AFTER {
            send_all(&mut o);
            assert_eq!(o.on_reconnect(), None);
        }
        // A connection on which nothing was written.
        assert_eq!(o.on_reconnect(), None);
        for _ in 1..SET_ASIDE_AFTER {
            send_all(&mut o);
            assert_eq!(o.on_reconnect(), None);
        }
        // Delivered at last: the count starts again.
        let sent = send_all(&mut o);
        assert!(o.on_ack(sent[0].0).is_some());
        for _ in 1..SET_ASIDE_AFTER {
            send_all(&mut o);
            assert_eq!(o.on_reconnect(), None);
        }
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn acked_messages_leave_and_others_are_resent_in_order() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 5, 1);
        let sent = send_all(&mut o);
        assert_eq!(sent, vec![(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]);
        assert_eq!(o.on_ack(2).map(|m| m.id), Some(1));
        assert!(o.on_ack(2).is_none());
        assert_eq!(o.len(), 4);
        o.on_reconnect();
        assert_eq!(ids(&send_all(&mut o)), vec![0, 2, 3, 4]);
        assert_eq!(o.acked(), 1);
    }

    #[test]
    fn the_window_limits_what_is_written() {
        let mut o = Outbox::new(100, 3);
        push(&mut o, 5, 1);
        assert_eq!(ids(&send_all(&mut o)), vec![0, 1, 2]);
        o.on_ack(1);
        assert_eq!(send_all(&mut o), vec![(4, 3)]);
    }

    #[test]
    fn qos0_leaves_once_written_and_comes_back_if_the_write_failed() {
        let mut o = Outbox::new(100, 10);
        push(&mut o, 2, 0);
        assert_eq!(send_all(&mut o), vec![(0, 0), (0, 1)]);
        o.on_reconnect();
        assert_eq!(o.len(), 2);
        send_all(&mut o);
        assert_eq!(o.on_written().count(), 2);
        assert!(o.is_empty());
        assert_eq!(o.acked(), 2);
    }

    #[test]
    fn packet_ids_wrap_past_those_still_in_flight() {
        let mut o = Outbox::new(usize::MAX, 4);
        push(&mut o, 1, 1);
        assert_eq!(send_all(&mut o), vec![(1, 0)]); // id 0 stays in flight as pkid 1
        for i in 1..=u64::from(u16::MAX) {
            push(&mut o, 1, 1);
            let sent = send_all(&mut o);
            assert_eq!(sent.len(), 1);
            assert_ne!(sent[0].0, 0);
            assert_ne!(
                sent[0].0, 1,
                "message {i} took the packet id still in flight"
            );
            assert!(o.on_ack(sent[0].0).is_some());
        }
        assert_eq!(o.on_ack(1).map(|m| m.id), Some(0));
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_queued_and_counts() {
        let mut o = Outbox::new(3, 1);
        push(&mut o, 1, 1);
        send_all(&mut o); // id 0 in flight as pkid 1
        push(&mut o, 4, 1); // ids 1..=4, room for 2 queued
        assert_eq!(o.len(), 3);
        assert_eq!(o.dropped(), 2);
        o.on_ack(1);
        let mut left = Vec::new();
        while let Some((pkid, m)) = o.next_to_send() {
            left.push(m.id);
            o.on_ack(pkid);
        }
        assert_eq!(left, vec![3, 4]);
    }

    #[test]
    fn a_full_outbox_dropping_newest_keeps_what_it_queued() {
        let mut o = Outbox::new(3, 1).dropping(WhenFull::DropNewest);
        push(&mut o, 5, 1);
        assert_eq!((o.len(), o.dropped()), (3, 2));
        let mut left = Vec::new();
        while let Some((pkid, m)) = o.next_to_send() {
            left.push(m.id);
            o.on_ack(pkid);
        }
        assert_eq!(left, vec![0, 1, 2]);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Push(u8),
        Send,
        Ack(usize),
        Written,
        Reconnect,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..2).prop_map(Step::Push),
            Just(Step::Send),
            any::<usize>().prop_map(Step::Ack),
            Just(Step::Written),
            Just(Step::Reconnect),
        ]
    }

    proptest! {
        /// Against a model: every message is delivered exactly once unless dropped or set
        /// aside, the window holds, and nothing is lost across reconnects.
        #[test]
        fn every_message_is_delivered_or_counted(
            steps in proptest::collection::vec(step(), 1..300),
            capacity in 1usize..40,
            window in 1usize..8,
        ) {
            let mut o = Outbox::new(capacity, window);
            let mut delivered = Vec::new();
            let mut inflight: Vec<u16> = Vec::new();
            let mut pushed = 0u64;
            let mut set_aside = 0u64;
            for s in steps {
                match s {
                    Step::Push(q) => { o.push(Draft {
                        topic: Arc::from("t"), payload: Bytes::new(), qos: q,
                        retain: false, weight: 1, spool: None,
                    }); pushed += 1; }
                    Step::Send => for (pkid, _) in send_all(&mut o) {
                        if pkid != 0 {
                            prop_assert!(!inflight.contains(&pkid));
                            inflight.push(pkid);
                        }
                    },
                    Step::Ack(i) if !inflight.is_empty() => {
                        let pkid = inflight.swap_remove(i % inflight.len());
                        let m = o.on_ack(pkid);
                        prop_assert!(m.is_some());
                        delivered.extend(m.map(|m| m.id));
                    }
                    Step::Ack(_) => {}
                    Step::Written => delivered.extend(o.on_written().map(|m| m.id)),
                    Step::Reconnect => {
                        set_aside += u64::from(o.on_reconnect().is_some());
                        inflight.clear();
                    }
                }
                prop_assert!(o.len() <= capacity);
                prop_assert!(inflight.len() <= window);
            }
            set_aside += u64::from(o.on_reconnect().is_some());
            loop {
                let sent = send_all(&mut o);
                if sent.is_empty() { break; }
                for (pkid, _) in sent {
                    if pkid != 0 { delivered.extend(o.on_ack(pkid).map(|m| m.id)); }
                }
                delivered.extend(o.on_written().map(|m| m.id));
            }
            let mut unique = delivered.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), delivered.len(), "delivered twice");
            prop_assert_eq!(delivered.len() as u64 + o.dropped() + set_aside, pushed);
            prop_assert_eq!(o.acked(), delivered.len() as u64);
        }
    }
}
