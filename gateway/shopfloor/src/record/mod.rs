//! The recorder (`[record]`): what shopfloor gateways publish over MQTT, turned back into samples
//! and fed through the ring to this process's sinks (`[influx]`, `[csv]`, the HTTP API). This is
//! how the fieldlab stores data from many gateways: gateways publish, recorders write.
//!
//! - `shopfloor_contract::json::parse`: a gateway's payloads (both layouts) back into readings;
//! - [`sparkplug`]: Sparkplug B messages of any edge node into readings, through
//!   `shopfloor_contract::sparkplug::host`, with an NCMD Rebirth when the view is broken.
//!
//! Machines and tags are learnt as they arrive and added to a [`SharedCatalog`]; a machine's
//! kind comes from its retained `_status`, which the broker hands over before any sample.
//! What is learnt is bounded: names follow [`parse::name_ok`] (so none can climb out of a
//! sink's directory), and at most `max_machines` machines and `max_tags` tags are learnt;
//! every message skipped for either is counted by reason in
//! `shopfloor_record_skipped_total`.
//! With `share_group` the subscriptions are `$share/{group}/{filter}`: the broker gives each
//! message to one member of the group, so recorders split the load and nothing is stored twice.
//!
//! The session is persistent (clean session off, client id `shopfloor-record-{name}`) at QoS 1,
//! so the broker keeps what is published while the recorder is stopped or restarting and hands
//! it over on the next connection. A message is acknowledged by hand, once every storing sink
//! has its samples in its own hands ([`Storing`]: the CSV rows flushed to their file, the
//! points encoded into the store sink's bounded buffer or spool), so a recorder killed at any
//! moment has stored, or will be handed again, everything the broker took from a publisher.
//! The acknowledgement waits for no periodic flush or fsync: with the broker's in-flight window
//! (20 messages for mosquitto), a wait of a flush interval would cap the recorder at 20
//! messages per interval. The subscriptions are renewed on every connection, and the
//! connection is retried with backoff, forever.

pub mod sparkplug;

use crate::config::RecordConfig;
use crate::metrics::{Metrics, SkipReason};
use crate::sink::SinkStats;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use shopfloor_contract::json::parse::{self, Parsed, Reading};
use shopfloor_contract::sparkplug::Outgoing;
use shopfloor_core::backoff::Backoff;
use shopfloor_core::ring::Producer;
use shopfloor_core::{MachineId, MachineInfo, Sample, SharedCatalog, TagId, TagInfo};
use shopfloor_mqtt::{session, tls};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// One `EventLoop::poll` that owns the event loop and hands it back with the event.
///
/// The poll must not be cancelled: dropped while connecting, it abandons a connection the broker
/// has already accepted and opens another. So the recorder keeps this future alive across
/// `select!` iterations instead of polling afresh in each.
type Polling = Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

fn poll_owned(mut eventloop: EventLoop) -> Polling {
    Box::pin(async move {
        let event = eventloop.poll().await;
        (eventloop, event)
    })
}

/// The pending poll's outcome; never resolves when there is none.
async fn next_event(polling: &mut Option<Polling>) -> (EventLoop, Result<Event, ConnectionError>) {
    match polling {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The recorder could not be set up.
#[derive(Debug, Error)]
pub enum RecordError {
    /// TLS for `mqtts://`.
    #[error("[record]: {0}")]
    Tls(#[from] tls::TlsError),
    /// The password variable is missing.
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
}

/// The sinks a recorder's samples go to, and how it learns that they have taken them.
#[derive(Debug, Clone, Default)]
pub struct Storing {
    /// Their counters, of which `taken` matters here.
    pub sinks: Vec<Arc<SinkStats>>,
    /// Woken whenever one of them has taken more.
    pub progress: Arc<Notify>,
}

impl Storing {
    /// Samples that every one of them has taken (all, when there is none).
    fn taken(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| s.taken.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// How often the recorder looks at its sinks' progress without being woken: a safety net.
const ACK_RECHECK: Duration = Duration::from_millis(50);

/// A machine the recorder has seen.
#[derive(Debug)]
struct Known {
    id: MachineId,
    tags: HashMap<String, TagId>,
}

/// Subscribes and records until stopped.
#[derive(Debug)]
pub struct Recorder {
    options: MqttOptions,
    filters: Vec<String>,
    catalog: Arc<SharedCatalog>,
    producer: Producer,
    machines: HashMap<String, Known>,
    // Kinds from statuses of machines not seen yet (at most `max_machines` of them).
    kinds: HashMap<String, String>,
    refused: u64,
    batch: Vec<Sample>,
    max_machines: usize,
    max_tags: usize,
    /// Tags learnt so far, over all machines.
    tags: usize,
    metrics: Arc<Metrics>,
    sparkplug: sparkplug::Hearing,
    storing: Storing,
    /// Samples pushed into the ring so far, and those of them the ring dropped.
    pushed: u64,
    lost_in_ring: u64,
}

impl Recorder {
    /// A recorder of gateway `gateway`, feeding `producer` and counting what it skips in
    /// `metrics`.
    pub fn new(
        cfg: &RecordConfig,
        gateway: &str,
        catalog: Arc<SharedCatalog>,
        producer: Producer,
        metrics: Arc<Metrics>,
    ) -> Result<Recorder, RecordError> {
        let settings =
            cfg.auth
                .session(&cfg.url, format!("shopfloor-record-{gateway}"), 1 << 20)?;
        let mut options = session::options(settings)?;
        options.set_clean_session(false).set_manual_acks(true);
        let filters = cfg
            .topics
            .iter()
            .map(|t| match &cfg.share_group {
                Some(g) => format!("$share/{g}/{t}"),
                None => t.clone(),
            })
            .collect();
        Ok(Recorder {
            options,
            filters,
            catalog,
            producer,
            machines: HashMap::new(),
            kinds: HashMap::new(),
            refused: 0,
            batch: Vec::new(),
            max_machines: cfg.max_machines,
            max_tags: cfg.max_tags,
            tags: 0,
            sparkplug: sparkplug::Hearing::new(cfg.max_machines, cfg.max_tags),
            metrics,
            storing: Storing::default(),
            pushed: 0,
            lost_in_ring: 0,
        })
    }

    /// Acknowledges a message only once `storing` has taken its samples (without, as soon as
    /// they are in the ring).
    #[must_use]
    pub fn acknowledging_after(mut self, storing: Storing) -> Recorder {
        self.storing = storing;
        self
    }

    /// Moves the messages whose samples every storing sink has taken to `acks`, in order.
    fn release(
        &self,
        unacked: &mut VecDeque<(rumqttc::Publish, u64)>,
        acks: &mut VecDeque<rumqttc::Publish>,
    ) {
        // What the ring dropped never reaches a sink: it is lost (and counted) already.
        let done = self.storing.taken().saturating_add(self.lost_in_ring);
        while unacked.front().is_some_and(|(_, upto)| *upto <= done) {
            if let Some((p, _)) = unacked.pop_front() {
                acks.push_back(p);
            }
        }
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let (client, eventloop) = AsyncClient::new(self.options.clone(), 1024);
        let mut polling = Some(poll_owned(eventloop));
        // Messages whose samples are on their way to the sinks, with the count of samples
        // pushed when each was taken; then those ready, which the client's request queue
        // could not take yet: sent before anything else, in order, so the broker's in-flight
        // window never stays full.
        let mut unacked: VecDeque<(rumqttc::Publish, u64)> = VecDeque::new();
        let mut acks: VecDeque<rumqttc::Publish> = VecDeque::new();
        let mut backoff = Backoff::default();
        let mut down = false;
        let progress = Arc::clone(&self.storing.progress);
        loop {
            let waiting = !unacked.is_empty();
            // An event, or `None` when a sink's progress woke the recorder.
            let woke = tokio::select! {
                () = stop.cancelled() => break,
                e = next_event(&mut polling) => Some(e),
                () = progress.notified(), if waiting => None,
                () = tokio::time::sleep(ACK_RECHECK), if waiting => None,
            };
            if let Some((mut eventloop, event)) = woke {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        self.subscribe(&client);
                        if down {
                            info!("broker reachable again; recording");
                        }
                        down = false;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => self.subscribed(&ack),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some(command) = self.on_message(&p.topic, &p.payload) {
                            sparkplug::send(&client, command);
                        }
                        unacked.push_back((p, self.pushed));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let delay = backoff.next_delay();
                        if down {
                            debug!(error = %e, retry_in = ?delay, "broker still unreachable");
                        } else {
                            warn!(error = %e, retry_in = ?delay, "lost the broker; reconnecting");
                            down = true;
                        }
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                        // A fresh connection: the broker hands over again what was not
                        // acknowledged.
                        unacked.clear();
                        acks.clear();
                        eventloop.clean();
                    }
                }
                polling = Some(poll_owned(eventloop));
            }
            self.release(&mut unacked, &mut acks);
            while let Some(p) = acks.front() {
                if client.try_ack(p).is_err() {
                    break;
                }
                acks.pop_front();
            }
        }
        let _ = client.try_disconnect();
    }

    /// Subscribes to every filter, on each new connection.
    fn subscribe(&self, client: &AsyncClient) {
        for f in &self.filters {
            if let Err(e) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                warn!(filter = %f, error = %e, "cannot subscribe");
            }
        }
    }

    /// Says whether the broker granted the subscriptions.
    fn subscribed(&self, ack: &rumqttc::SubAck) {
        if ack
            .return_codes
            .iter()
            .any(|c| matches!(c, SubscribeReasonCode::Failure))
        {
            warn!(filters = ?self.filters, "the broker refused a subscription");
        } else {
            info!(event = "recording", filters = ?self.filters, "recording");
        }
    }

    /// Takes one message; returns a command to publish, when a Sparkplug node must be asked
    /// for its births.
    fn on_message(&mut self, topic: &str, payload: &[u8]) -> Option<Outgoing> {
        if sparkplug::is_sparkplug(topic) {
            return self.on_sparkplug(topic, payload);
        }
        match parse::parse(topic, payload) {
            Ok(Parsed::Readings(readings)) => self.record(readings, topic),
            Ok(Parsed::Status) => self.learn_kind(topic, payload),
            Err(e @ parse::ParseError::Name(_)) => self.skip(SkipReason::Name, topic, Some(&e)),
            Err(e) => self.skip(SkipReason::Payload, topic, Some(&e)),
        }
        None
    }

    /// A Sparkplug message: its readings recorded as machine `{device_id}` of kind
    /// `sparkplug`, what could not be placed counted.
    fn on_sparkplug(&mut self, topic: &str, payload: &[u8]) -> Option<Outgoing> {
        let heard = match self.sparkplug.hear(topic, payload) {
            Ok(heard) => heard,
            Err(e) => {
                self.skip(SkipReason::Payload, topic, Some(&e));
                return None;
            }
        };
        for reason in heard.skipped {
            self.skip(reason, topic, None);
        }
        for r in &heard.readings {
            if !self.machines.contains_key(&r.machine) && self.kinds.len() < self.max_machines {
                self.kinds
                    .entry(r.machine.clone())
                    .or_insert_with(|| sparkplug::KIND.to_owned());
            }
        }
        self.record(heard.readings, topic);
        heard.rebirth
    }

    /// Turns the readings of one message into samples and pushes them into the ring in one
    /// batch; a reading that cannot be placed is counted as skipped.
    fn record(&mut self, readings: impl IntoIterator<Item = Reading>, topic: &str) {
        for r in readings {
            match self.sample(r) {
                Ok(s) => self.batch.push(s),
                Err(reason) => self.skip(reason, topic, None),
            }
        }
        if !self.batch.is_empty() {
            self.pushed += self.batch.len() as u64;
            self.lost_in_ring += self.producer.push_batch(&mut self.batch);
            self.batch.clear();
        }
    }

    /// Counts a skipped message; logs the first, then every thousandth, so that a stray
    /// publisher cannot flood the log.
    fn skip(&mut self, reason: SkipReason, topic: &str, error: Option<&dyn std::fmt::Display>) {
        self.metrics.skipped(reason);
        self.refused += 1;
        if self.refused % 1000 == 1 {
            let error = error.map(ToString::to_string).unwrap_or_default();
            // The topic is the sender's: shown as Debug, so it cannot forge a log line.
            warn!(
                topic = ?topic,
                reason = reason.as_str(),
                error,
                skipped = self.refused,
                "message skipped"
            );
        }
    }

    /// A machine's kind, from the `kind` of its retained status.
    fn learn_kind(&mut self, topic: &str, payload: &[u8]) {
        let Some(machine) = topic
            .strip_suffix("/_status")
            .and_then(|t| t.rsplit('/').next())
        else {
            return;
        };
        if !parse::name_ok(machine) {
            self.skip(SkipReason::Name, topic, None);
            return;
        }
        let Some(kind) = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|j| j.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        else {
            return;
        };
        match self.machines.get(machine) {
            Some(known) => {
                let id = known.id;
                self.catalog.update(|c| {
                    if c.machine(id).is_some_and(|m| m.kind != kind) {
                        c.set_kind(id, &kind);
                    }
                });
            }
            None if self.kinds.len() < self.max_machines => {
                self.kinds.insert(machine.to_owned(), kind);
            }
            None => self.skip(SkipReason::MaxMachines, topic, None),
        }
    }

    fn sample(&mut self, r: Reading) -> Result<Sample, SkipReason> {
        let (machine, tag) = self.ids(&r)?;
        Ok(Sample::new(
            machine,
            tag,
            r.timestamp_ms,
            r.seq,
            r.value,
            r.quality,
        ))
    }

    /// The ids of a reading's machine and tag, adding them to the catalog the first time, within
    /// the bounds.
    fn ids(&mut self, r: &Reading) -> Result<(MachineId, TagId), SkipReason> {
        if let Some(known) = self.machines.get(&r.machine)
            && let Some(t) = known.tags.get(&r.tag)
        {
            return Ok((known.id, *t));
        }
        if !self.machines.contains_key(&r.machine) {
            if self.machines.len() >= self.max_machines {
                return Err(SkipReason::MaxMachines);
            }
            let kind = self.kinds.remove(&r.machine).unwrap_or_default();
            let added = self.catalog.update(|c| {
                c.add(MachineInfo {
                    id: r.machine.clone(),
                    kind,
                    protocol: "mqtt".into(),
                    tags: Vec::new(),
                })
            });
            match added {
                Ok(id) => {
                    info!(machine = %r.machine, "recording a new machine");
                    self.machines.insert(
                        r.machine.clone(),
                        Known {
                            id,
                            tags: HashMap::new(),
                        },
                    );
                }
                Err(e) => {
                    warn!(machine = %r.machine, error = %e, "cannot record another machine");
                    return Err(SkipReason::MaxMachines);
                }
            }
        }
        if self.tags >= self.max_tags {
            return Err(SkipReason::MaxTags);
        }
        let known = self
            .machines
            .get_mut(&r.machine)
            .ok_or(SkipReason::MaxMachines)?;
        let id = known.id;
        let tag = self
            .catalog
            .update(|c| {
                c.add_tag(
                    id,
                    TagInfo {
                        name: r.tag.clone(),
                        unit: r.unit.clone(),
                    },
                )
            })
            .map_err(|e| {
                warn!(machine = %r.machine, tag = %r.tag, error = %e, "cannot record another tag");
                SkipReason::MaxTags
            })?;
        known.tags.insert(r.tag.clone(), tag);
        self.tags += 1;
        Ok((id, tag))
    }
}
