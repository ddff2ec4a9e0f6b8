//! The MQTT sink: samples and machine states to a broker, as the contract's topics and payloads
//! (encoded by `shopfloor_contract::json`), over the client of `shopfloor_mqtt` (packets,
//! connection, link, outbox, TLS).
//!
//! - [`record`]: a message as the disk spool keeps it (pure);
//! - this module: the task that drives the link, the outbox and the inputs.
//!
//! Every loop turn writes what the outbox lets out as one buffer (a poll cycle's messages in
//! one system call, not one each), and the acknowledgements are read as they come. The sink
//! always asks for a clean session: the outbox, not the broker, remembers what is
//! unacknowledged, and nothing is written while disconnected.
//!
//! With `[buffer] spool_dir`, every sample message is written to the spool under
//! `<spool_dir>/mqtt/` first (handed to the operating system at the end of each batch, forced
//! to disk every `fsync_interval`), read from there into the outbox a window at a time, and
//! acknowledged there on its PUBACK: a broker outage fills the disk instead of memory, and what
//! a stopped or killed gateway had not delivered goes out after its next start. A machine's
//! status changes arrive among its samples and take the same way (spool or outbox), so each is
//! published in its place: `offline` after the machine's last sample before it, `online` before
//! its first one after it. Every new connection also publishes the latest status of each
//! machine at once, ahead of any backlog. A message the spool cannot take (a full
//! disk) waits in the outbox instead, as without a spool and within the same bound: a full disk
//! must not cost samples while the broker takes them.

pub mod record;

use crate::config::{Layout, MqttConfig};
use crate::runtime::StartError;
use crate::sink::intake::Intake as Feeding;
use crate::sink::{
    Part, Sink, SinkContext, SinkStats, SinkTask, Spooling, Throttle, WithFsync, parts,
};
use crate::status::Statuses;
use bytes::Bytes;
use shopfloor_contract::json;
use shopfloor_core::{MachineState, MachineStatus, Sample, SharedCatalog, time::now_ms};
use shopfloor_mqtt::connection::Target;
use shopfloor_mqtt::link::{Link, LinkEvent, LinkHealth};
use shopfloor_mqtt::outbox::{self, Draft, Message, Outbox};
use shopfloor_mqtt::{tls, wire};
use shopfloor_spool::syncer::Syncer;
use shopfloor_spool::{Spool, Synced};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use thiserror::Error;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

/// Messages held in memory until acknowledged, at most, when there is no spool.
pub const OUTBOX_CAPACITY: usize = 200_000;
/// Messages written and not yet acknowledged, at most, by default (`[mqtt] inflight`).
pub use shopfloor_mqtt::outbox::WINDOW;
/// A write buffer is sent once it holds this much; the rest of the window follows.
const WRITE_CHUNK: usize = 256 * 1024;
/// Limit for connecting and for each write.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The sink could not start.
#[derive(Debug, Error)]
pub enum MqttError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The password variable is missing.
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
}

/// The MQTT sink of `[mqtt]`, if the section is there.
pub fn build(
    ctx: &SinkContext<'_>,
    stats: Arc<SinkStats>,
) -> Result<Option<Box<dyn Sink>>, StartError> {
    let Some(mqtt) = &ctx.config.mqtt else {
        return Ok(None);
    };
    let gateway = &ctx.config.gateway;
    // Two gateways left at the default name would take each other's session: the broker
    // drops one whenever the other connects. The host name tells them apart.
    let client_id = if gateway.named {
        format!("shopfloor-{}", gateway.name)
    } else {
        format!("shopfloor-{}", host_name())
    };
    let bound = ctx.bound(mqtt.when_full);
    // Its outbox drops as its intake does: one policy for what the sink holds in memory.
    let resolved = MqttConfig {
        when_full: Some(bound.when_full),
        ..mqtt.clone()
    };
    let sink = MqttSink::new(
        resolved,
        &gateway.name,
        client_id,
        Arc::clone(ctx.shared),
        stats,
        ctx.spool("mqtt")?,
    )?
    .with_statuses(ctx.status.snapshot());
    info!(broker = %mqtt.url, prefix = %mqtt.topic_prefix, "publishing to MQTT");
    Ok(Some(Box::new(WithFsync {
        sink,
        fsync: ctx.config.buffer.fsync_interval,
        bound,
    })))
}

/// This machine's host name, cut to what a client id may safely hold (letters, digits, `-`,
/// `_`, `.`, at most 40), or the process id when there is none.
fn host_name() -> String {
    let name: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    if name.is_empty() {
        format!("pid-{}", std::process::id())
    } else {
        name
    }
}

impl Spooling for MqttSink {
    const NAME: &'static str = "mqtt";

    fn serve(self, input: Feeding, budget: Duration, fsync: Duration) -> SinkTask {
        Box::pin(self.run(input, budget, fsync))
    }
}

/// The link's ups and downs, in the sink's counters and `/health`.
impl LinkHealth for SinkStats {
    fn connected(&self) {
        self.health.delivering();
    }

    fn lost(&self, reason: &str, refused: bool) {
        self.health.failing(reason, refused);
        SinkStats::add(&self.errors, 1);
    }
}

/// A status message: retained, at QoS 1, carrying no samples.
fn retained(topic: &Arc<str>, payload: Vec<u8>) -> Draft {
    Draft {
        topic: Arc::clone(topic),
        payload: Bytes::from(payload),
        qos: 1,
        retain: true,
        weight: 0,
        spool: None,
    }
}

/// The sink's input, taken in the main loop and during writes alike.
#[derive(Debug)]
struct Intake {
    rx: Feeding,
    /// When the input closed: the flush budget runs from then.
    closed_at: Option<Instant>,
}

impl Intake {
    fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    fn close(&mut self) {
        self.closed_at.get_or_insert_with(Instant::now);
    }
}

/// Everything the sink needs, built before it starts so that setup errors stop the gateway.
#[derive(Debug)]
pub struct MqttSink {
    cfg: MqttConfig,
    target: Arc<Target>,
    /// The catalog as it grows (machines added by a new configuration); looked at per batch,
    /// never held, so that a reload's copy of it replaces the one before.
    shared: Arc<SharedCatalog>,
    stats: Arc<SinkStats>,
    /// Topic per machine and tag (layout tag) or per machine (layout machine).
    topics: Vec<Vec<Arc<str>>>,
    status_topics: Vec<Arc<str>>,
    gateway_topic: Arc<str>,
    units: Vec<Vec<Vec<u8>>>,
    machine_seq: Vec<u64>,
    /// Each machine's latest status as the stream told it, republished on every connection.
    known: Statuses,
    spool: Option<Box<Spool>>,
    /// The spool's syncs, on a blocking thread while the sink goes on.
    syncer: Syncer,
    spool_dropped: u64,
    /// Spool failures (a full disk) repeat for every message: logged now and then.
    spool_trouble: Throttle,
    /// The same for messages the spool could not take, on their own: that says where they go.
    push_trouble: Throttle,
    /// Sample messages held in the outbox only, because the spool could not take them.
    unspooled: usize,
    scratch: Vec<u8>,
}

/// Logs a spool failure, at most once per interval.
fn complain(trouble: &mut Throttle, e: &std::io::Error, what: &str) {
    if let Some(repeats) = trouble.ready() {
        warn!(error = %e, repeats, "{what}");
    }
}

impl MqttSink {
    /// Prepares the sink of gateway `gateway` (connecting as `client_id`) for the machines of
    /// `catalog`; `spool` holds the sample messages on disk until the broker has them, when set.
    pub fn new(
        cfg: MqttConfig,
        gateway: &str,
        client_id: String,
        shared: Arc<SharedCatalog>,
        stats: Arc<SinkStats>,
        spool: Option<Spool>,
    ) -> Result<MqttSink, MqttError> {
        let prefix = cfg.topic_prefix.clone();
        let gateway_topic: Arc<str> = json::gateway_topic(&prefix, gateway).into();
        let password = cfg.auth.password()?;
        let offline = json::gateway_payload(false);
        let mut connect = Vec::new();
        wire::connect(
            &mut connect,
            &wire::Connect {
                client_id: &client_id,
                keep_alive: u16::try_from(cfg.keep_alive.as_secs()).unwrap_or(u16::MAX),
                clean_session: true,
                will: Some(wire::Will {
                    topic: &gateway_topic,
                    payload: &offline,
                    qos: 1,
                    retain: true,
                }),
                username: cfg.auth.username.as_deref(),
                password: password.as_deref().map(str::as_bytes),
            },
        );
        let tls = match cfg.url.scheme.as_str() {
            "mqtts" => Some(tls::client_config(cfg.auth.tls_files())?),
            _ => None,
        };
        let target = Arc::new(Target {
            host: cfg.url.host.clone(),
            port: cfg.url.port,
            tls,
            connect,
            timeout: NETWORK_TIMEOUT,
        });
        let spool_dropped = spool.as_ref().map_or(0, |s| s.counts().dropped_weight);
        if let Some(spool) = &spool {
            spool.report_opened("mqtt");
        }
        let mut sink = MqttSink {
            cfg,
            target,
            shared,
            stats,
            topics: Vec::new(),
            status_topics: Vec::new(),
            gateway_topic,
            units: Vec::new(),
            machine_seq: Vec::new(),
            known: Vec::new(),
            spool: spool.map(Box::new),
            syncer: Syncer::default(),
            spool_dropped,
            spool_trouble: Throttle::new(Duration::from_secs(10)),
            push_trouble: Throttle::new(Duration::from_secs(10)),
            unspooled: 0,
            scratch: Vec::new(),
        };
        sink.learn(0);
        Ok(sink)
    }

    /// The same sink knowing the machines' states `now` (by machine index): its first
    /// connection publishes those, not `connecting`, when a reload starts it while they run.
    pub fn with_statuses(mut self, now: Statuses) -> MqttSink {
        for (known, now) in self.known.iter_mut().zip(now) {
            *known = now;
        }
        self
    }

    /// Builds the topic tables of machines added to the catalog since the last look, when
    /// machine `index` is not in them yet.
    fn learn(&mut self, index: usize) {
        if index < self.topics.len() {
            return;
        }
        let catalog = self.shared.load();
        let prefix = self.cfg.topic_prefix.clone();
        let connecting = MachineStatus {
            state: MachineState::Connecting,
            since_ms: now_ms(),
            error: None,
        };
        for i in self.topics.len()..catalog.len() {
            let Some(m) = u16::try_from(i)
                .ok()
                .and_then(|i| catalog.machine(shopfloor_core::MachineId(i)))
            else {
                break;
            };
            self.topics.push(match self.cfg.layout {
                Layout::Tag => m
                    .tags
                    .iter()
                    .map(|t| json::tag_topic(&prefix, &m.id, &t.name).into())
                    .collect(),
                Layout::Machine => vec![json::machine_topic(&prefix, &m.id).into()],
            });
            self.status_topics
                .push(json::status_topic(&prefix, &m.id).into());
            self.units.push(
                m.tags
                    .iter()
                    .map(|t| json::unit_suffix(t.unit.as_deref()))
                    .collect(),
            );
            self.machine_seq.push(0);
            self.known.push(connecting.clone());
        }
    }

    /// The machines to speak of on a new connection and in the goodbye: not those removed
    /// from the configuration (their last status stays retained as it was sent).
    fn current(&self) -> impl Iterator<Item = usize> + '_ {
        let catalog = self.shared.load();
        (0..self.status_topics.len()).filter(move |&i| {
            u16::try_from(i).is_ok_and(|i| !catalog.is_retired(shopfloor_core::MachineId(i)))
        })
    }

    /// Queues a status (in memory: a new connection publishes every status again).
    fn enqueue(&self, outbox: &mut Outbox, topic: &Arc<str>, payload: Vec<u8>, retain: bool) {
        let q = if retain { 1 } else { self.cfg.qos };
        let dropped = outbox.push(Draft {
            topic: Arc::clone(topic),
            payload: Bytes::from(payload),
            qos: q,
            retain,
            weight: 0,
            spool: None,
        });
        SinkStats::add(&self.stats.dropped, dropped);
    }

    /// Queues a message of `weight` samples at the sink's QoS: to the spool when there is one,
    /// else the outbox.
    fn enqueue_samples(
        &mut self,
        outbox: &mut Outbox,
        topic: &Arc<str>,
        payload: Vec<u8>,
        weight: u64,
    ) {
        let draft = Draft {
            topic: Arc::clone(topic),
            payload: Bytes::from(payload),
            qos: self.cfg.qos,
            retain: false,
            weight,
            spool: None,
        };
        self.enqueue_in_order(outbox, draft);
    }

    /// Queues a message behind everything queued before it: to the spool when there is one
    /// (the outbox takes it if the spool cannot), else the outbox.
    fn enqueue_in_order(&mut self, outbox: &mut Outbox, draft: Draft) {
        let Some(spool) = &mut self.spool else {
            let dropped = outbox.push(draft);
            SinkStats::add(&self.stats.dropped, dropped);
            return;
        };
        self.scratch.clear();
        record::encode(
            &mut self.scratch,
            &draft.topic,
            &draft.payload,
            draft.qos,
            draft.retain,
        );
        if let Err(e) = spool.push(draft.weight, &self.scratch) {
            if self.unspooled >= OUTBOX_CAPACITY {
                complain(
                    &mut self.push_trouble,
                    &e,
                    "cannot write to the MQTT spool and the memory is full too; dropped",
                );
                SinkStats::add(&self.stats.dropped, draft.weight);
                return;
            }
            if let Some(repeats) = self.push_trouble.ready() {
                warn!(
                    event = "spool_unwritable",
                    sink = "mqtt",
                    error = %e,
                    repeats,
                    "cannot write to the MQTT spool; messages wait in memory meanwhile"
                );
            }
            if draft.weight > 0 {
                self.unspooled += 1;
            }
            outbox.push(draft);
        }
    }

    /// After a batch: hands the spool's writes to the system and counts what it dropped.
    fn after_batch(&mut self) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        if let Err(e) = spool.flush() {
            complain(
                &mut self.spool_trouble,
                &e,
                "cannot write to the MQTT spool",
            );
        }
        let now = spool.counts().dropped_weight;
        SinkStats::add(&self.stats.dropped, now - self.spool_dropped);
        self.spool_dropped = now;
    }

    /// Fills the outbox from the spool, a window ahead of what the broker has acknowledged.
    fn refill(&mut self, outbox: &mut Outbox) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        while outbox.queued() < self.cfg.inflight {
            let r = match spool.read_next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    complain(&mut self.spool_trouble, &e, "cannot read the MQTT spool");
                    break;
                }
            };
            match record::decode(&r.payload) {
                Some(m) => {
                    outbox.push(Draft {
                        topic: Arc::from(m.topic),
                        payload: m.payload,
                        qos: m.qos,
                        retain: m.retain,
                        weight: r.weight,
                        spool: Some(r.seq),
                    });
                }
                None => {
                    // The checksum held but the bytes are no message: skip it, counted.
                    warn!(
                        samples = r.weight,
                        "a record in the MQTT spool is not a message; dropped"
                    );
                    SinkStats::add(&self.stats.dropped, r.weight);
                    if let Err(e) = spool.ack_seq(r.seq) {
                        complain(&mut self.spool_trouble, &e, "cannot update the MQTT spool");
                    }
                }
            }
        }
    }

    /// A message reached the broker (PUBACK, or written at QoS 0).
    fn delivered(&mut self, m: Message) {
        SinkStats::add(&self.stats.sent, m.draft.weight);
        self.let_go(&m);
    }

    /// A message the broker would not take: every connection on which it was sent ended
    /// before its acknowledgement. Counted as rejected, logged, and let go (its spool record
    /// too), so that the messages behind it flow again.
    fn set_aside(&mut self, m: Message) {
        SinkStats::add(&self.stats.rejected, m.draft.weight);
        warn!(
            event = "mqtt_set_aside",
            topic = %m.draft.topic,
            bytes = m.draft.payload.len(),
            samples = m.draft.weight,
            connections = outbox::SET_ASIDE_AFTER,
            "MQTT: the broker dropped the connection after this message every time; it is set \
             aside (a broker's max_packet_size below the message, or a topic it refuses?)"
        );
        self.let_go(&m);
    }

    /// Lets go of what the spool holds for `m`, which leaves the outbox.
    fn let_go(&mut self, m: &Message) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        match m.draft.spool {
            Some(seq) => {
                if let Err(e) = spool.ack_seq(seq) {
                    complain(&mut self.spool_trouble, &e, "cannot update the MQTT spool");
                }
            }
            None if m.draft.weight > 0 => self.unspooled = self.unspooled.saturating_sub(1),
            None => {}
        }
    }

    /// Writes what the outbox lets out, in buffers of up to `WRITE_CHUNK`. A write to a slow
    /// broker can take up to `NETWORK_TIMEOUT`: the input is taken (and spooled) meanwhile, so
    /// that the dispatcher never finds this sink's channel full because of a slow write.
    async fn write_outbox(&mut self, link: &mut Link, outbox: &mut Outbox, intake: &mut Intake) {
        loop {
            let out = link.out();
            let mut more = false;
            while let Some((pkid, m)) = outbox.next_to_send() {
                let d = &m.draft;
                wire::publish(out, &d.topic, &d.payload, d.qos, d.retain, pkid);
                if out.len() >= WRITE_CHUNK {
                    more = true;
                    break;
                }
            }
            let flushed = {
                let flush = link.flush();
                tokio::pin!(flush);
                loop {
                    tokio::select! {
                        ok = &mut flush => break ok,
                        batch = intake.rx.recv(), if intake.is_open() => match batch {
                            // New messages join the queue; what is being written stays apart.
                            Some(b) => self.enqueue_batch(outbox, &b),
                            None => intake.close(),
                        },
                    }
                }
            };
            if !flushed {
                // Lost: the outbox puts everything back on the next connection.
                return;
            }
            for m in outbox.on_written() {
                self.delivered(m);
            }
            if !more {
                return;
            }
        }
    }

    /// A packet from the broker: a PUBACK delivers its message.
    fn on_packet(&mut self, outbox: &mut Outbox, packet: wire::Incoming) {
        if let wire::Incoming::PubAck(pkid) = packet
            && let Some(m) = outbox.on_ack(pkid)
        {
            self.delivered(m);
        }
    }

    /// Starts forcing the spool to disk, unless that runs already.
    fn sync_spool(&mut self) {
        if let Some(spool) = &mut self.spool
            && let Err(e) = self.syncer.start(spool)
        {
            complain(&mut self.spool_trouble, &e, "cannot sync the MQTT spool");
        }
    }

    /// Takes the outcome of the sync that ran.
    fn spool_synced(&mut self, done: Synced) {
        if let Some(spool) = &mut self.spool
            && let Err(e) = spool.end_sync(done)
        {
            complain(&mut self.spool_trouble, &e, "cannot sync the MQTT spool");
        }
    }

    /// A whole sync, after the one running: at the end.
    async fn last_sync(&mut self) {
        if let Some(spool) = &mut self.spool
            && let Err(e) = self.syncer.sync(spool).await
        {
            complain(&mut self.spool_trouble, &e, "cannot sync the MQTT spool");
        }
    }

    /// Messages waiting: in the spool when there is one (statuses aside, those it could not
    /// take included), else in the outbox.
    fn backlog(&self, outbox: &Outbox) -> u64 {
        match &self.spool {
            Some(spool) => spool.counts().pending + self.unspooled as u64,
            None => outbox.len() as u64,
        }
    }

    fn enqueue_batch(&mut self, outbox: &mut Outbox, batch: &[Sample]) {
        if let Some(last) = batch.iter().map(|s| s.machine.index()).max() {
            self.learn(last);
        }
        for part in parts(batch) {
            match part {
                Part::Readings(run) => self.enqueue_readings(outbox, run),
                Part::Status(event) => self.enqueue_status_event(outbox, event),
            }
        }
        self.after_batch();
    }

    /// A status change from the stream: remembered, and published in its place.
    fn enqueue_status_event(&mut self, outbox: &mut Outbox, event: &Sample) {
        let (Some((state, error)), Some(topic)) = (
            event.as_status(),
            self.status_topics.get(event.machine.index()),
        ) else {
            return;
        };
        let status = MachineStatus {
            state,
            since_ms: event.timestamp_ms,
            error: (state == MachineState::Offline).then(|| error.to_owned()),
        };
        if let Some(slot) = self.known.get_mut(event.machine.index()) {
            *slot = status.clone();
        }
        if state == MachineState::Connecting {
            return;
        }
        let payload = json::status_payload(&status, &self.kind(event.machine.index()));
        let draft = retained(topic, payload);
        self.enqueue_in_order(outbox, draft);
    }

    fn enqueue_readings(&mut self, outbox: &mut Outbox, batch: &[Sample]) {
        match self.cfg.layout {
            Layout::Tag => {
                for s in batch {
                    let (m, t) = (s.machine.index(), s.tag.index());
                    let (Some(topic), Some(unit)) = (
                        self.topics.get(m).and_then(|v| v.get(t)),
                        self.units.get(m).and_then(|v| v.get(t)),
                    ) else {
                        continue;
                    };
                    let mut payload = Vec::with_capacity(96);
                    json::tag_payload(&mut payload, s, unit);
                    let topic = Arc::clone(topic);
                    self.enqueue_samples(outbox, &topic, payload, 1);
                }
            }
            Layout::Machine => {
                let catalog = self.shared.load();
                // A poll cycle's samples share machine and timestamp and arrive together.
                for group in batch
                    .chunk_by(|a, b| a.machine == b.machine && a.timestamp_ms == b.timestamp_ms)
                {
                    let m = group[0].machine;
                    let (Some(info), Some(topic)) = (
                        catalog.machine(m),
                        self.topics.get(m.index()).and_then(|v| v.first()),
                    ) else {
                        continue;
                    };
                    let topic = Arc::clone(topic);
                    self.machine_seq[m.index()] += 1;
                    let mut payload = Vec::with_capacity(32 + 32 * group.len());
                    let values = group.iter().filter_map(|s| {
                        let name = info.tags.get(s.tag.index())?.name.as_str();
                        Some((name, s.value(), s.quality()))
                    });
                    json::machine_payload(
                        &mut payload,
                        group[0].timestamp_ms,
                        self.machine_seq[m.index()],
                        values,
                    );
                    self.enqueue_samples(outbox, &topic, payload, group.len() as u64);
                }
            }
        }
    }

    fn kind(&self, machine: usize) -> String {
        u16::try_from(machine)
            .ok()
            .and_then(|i| {
                self.shared
                    .load()
                    .machine(shopfloor_core::MachineId(i))
                    .map(|m| m.kind.clone())
            })
            .unwrap_or_default()
    }

    /// Every machine's latest status, straight into the outbox: a new connection tells the
    /// broker where each machine stands before it replays any backlog.
    fn republish_statuses(&self, outbox: &mut Outbox) {
        for i in self.current() {
            let Some(st) = self.known.get(i) else {
                continue;
            };
            if st.state == MachineState::Connecting {
                continue;
            }
            if let Some(topic) = self.status_topics.get(i) {
                self.enqueue(outbox, topic, json::status_payload(st, &self.kind(i)), true);
            }
        }
    }

    /// Runs until `input` closes and everything queued is acknowledged, or until `flush_for`
    /// has passed since it closed (what is left then stays in the spool, if there is one).
    /// Announces the gateway online (retained, with an offline last will) on every connection,
    /// and offline when it stops. `fsync` is how often the spool is forced to disk.
    pub async fn run(mut self, input: Feeding, flush_for: Duration, fsync: Duration) {
        let mut link = Link::new(
            Arc::clone(&self.target),
            self.cfg.url.to_string(),
            Arc::clone(&self.stats) as Arc<dyn LinkHealth>,
            self.cfg.keep_alive,
        );
        // With a spool the outbox holds a window read from it plus statuses: never full.
        let capacity = if self.spool.is_some() {
            usize::MAX
        } else {
            OUTBOX_CAPACITY
        };
        let mut outbox = Outbox::new(capacity, self.cfg.inflight)
            .dropping(self.cfg.when_full.unwrap_or_default());
        let mut sync_tick = tokio::time::interval(fsync);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut intake = Intake {
            rx: input,
            closed_at: None,
        };
        let far = Duration::from_secs(86_400 * 365);
        loop {
            if link.is_up() {
                self.refill(&mut outbox);
                self.write_outbox(&mut link, &mut outbox, &mut intake).await;
            }
            let backlog = self.backlog(&outbox);
            self.stats.backlog.store(backlog, Ordering::Relaxed);
            if let Some(spool) = &self.spool {
                let fill = (spool.counts().bytes, spool.max_bytes());
                self.stats.health.spool_fill(fill.0, fill.1);
            }
            if !intake.is_open() && outbox.is_empty() && backlog == 0 {
                break;
            }
            let flush_deadline = intake.closed_at.map(|t| t + flush_for);
            let deadline = flush_deadline.unwrap_or_else(|| Instant::now() + far);
            tokio::select! {
                event = link.next() => match event {
                    LinkEvent::Connected => {
                        if let Some(refused) = outbox.on_reconnect() {
                            self.set_aside(refused);
                        }
                        let gw = Arc::clone(&self.gateway_topic);
                        self.enqueue(&mut outbox, &gw, json::gateway_payload(true), true);
                        self.republish_statuses(&mut outbox);
                    }
                    LinkEvent::Packet(packet) => {
                        self.on_packet(&mut outbox, packet);
                        // The rest of the same read, without a turn of the loop each.
                        while let Some(packet) = link.buffered() {
                            self.on_packet(&mut outbox, packet);
                        }
                    }
                    LinkEvent::Lost | LinkEvent::PingDue => {}
                },
                batch = intake.rx.recv(), if intake.is_open() => match batch {
                    Some(batch) => self.enqueue_batch(&mut outbox, &batch),
                    None => intake.close(),
                },
                _ = sync_tick.tick(), if self.spool.is_some() => self.sync_spool(),
                done = self.syncer.done(), if !self.syncer.is_idle() => self.spool_synced(done),
                _ = sleep_until(deadline), if flush_deadline.is_some() => {
                    if let Some(spool) = &self.spool {
                        info!(
                            messages = spool.counts().pending,
                            "MQTT: undelivered messages stay in the spool for the next start"
                        );
                    }
                    let samples = outbox.unspooled_weight();
                    if samples > 0 {
                        warn!(samples, "MQTT flush timed out; unsent samples held in memory dropped");
                        SinkStats::add(&self.stats.dropped, samples);
                    }
                    break;
                }
            }
        }
        self.last_sync().await;
        if link.is_up() {
            self.say_goodbye(link, &outbox).await;
        }
    }

    /// Publishes the gateway and its machines offline (retained), waits up to a second for
    /// the acknowledgements, then disconnects cleanly (so the broker does not fire the will).
    async fn say_goodbye(&self, mut link: Link, outbox: &Outbox) {
        let stopped = MachineStatus {
            state: MachineState::Offline,
            since_ms: now_ms(),
            error: Some("gateway stopped".into()),
        };
        // A fresh outbox: whatever is still in flight stays unacknowledged (and spooled), and
        // keeps its packet ids, so that a late PUBACK of it is not taken for a goodbye's.
        let mut goodbye = Outbox::beside(outbox, usize::MAX);
        let mut draft = |topic: &Arc<str>, payload: Vec<u8>| {
            goodbye.push(retained(topic, payload));
        };
        for i in self.current() {
            if let Some(topic) = self.status_topics.get(i) {
                draft(topic, json::status_payload(&stopped, &self.kind(i)));
            }
        }
        draft(&self.gateway_topic, json::gateway_payload(false));
        let deadline = Instant::now() + Duration::from_secs(1);
        while !goodbye.is_empty() {
            let out = link.out();
            while let Some((pkid, m)) = goodbye.next_to_send() {
                let d = &m.draft;
                wire::publish(out, &d.topic, &d.payload, d.qos, d.retain, pkid);
            }
            if !link.flush().await {
                return;
            }
            match tokio::time::timeout_at(deadline, link.next()).await {
                Ok(LinkEvent::Packet(wire::Incoming::PubAck(pkid))) => {
                    goodbye.on_ack(pkid);
                    while let Some(p) = link.buffered() {
                        if let wire::Incoming::PubAck(pkid) = p {
                            goodbye.on_ack(pkid);
                        }
                    }
                }
                Ok(LinkEvent::Packet(_) | LinkEvent::PingDue) => {}
                Ok(LinkEvent::Lost | LinkEvent::Connected) => return,
                // Out of time: the broker reads the publishes before the DISCONNECT anyway.
                Err(_) => break,
            }
        }
        link.close().await;
    }
}
