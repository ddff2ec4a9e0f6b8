//! The MQTT sink: samples and machine states to a broker, as the contract's topics and payloads.
//!
//! - [`encode`]: topics and JSON payloads (pure);
//! - [`outbox`]: every message until the broker acknowledged it (pure protocol state);
//! - [`tls`]: rustls setup for `mqtts://`;
//! - this module: the task that drives rumqttc's event loop, the outbox and the inputs.
//!
//! The event loop is polled in this task, so nothing is handed to rumqttc while it is
//! disconnected, and the outbox alone decides what is sent again after a reconnect. The sink
//! always asks for a clean session: the outbox, not the broker, remembers what is unacknowledged.

pub mod encode;
pub mod outbox;
pub mod tls;

use crate::config::{Layout, MqttConfig};
use crate::sink::{Batch, SinkStats};
use crate::status::Statuses;
use bytes::Bytes;
use outbox::Outbox;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use shopfloor_core::backoff::Backoff;
use shopfloor_core::{Catalog, MachineState, MachineStatus, Sample, time::now_ms};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

/// Messages held until acknowledged, at most (the disk spool takes over beyond this).
pub const OUTBOX_CAPACITY: usize = 200_000;
/// Messages handed to the client and not yet acknowledged, at most.
pub const WINDOW: usize = 1000;

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

/// Everything the sink needs, built before it starts so that setup errors stop the gateway.
#[derive(Debug)]
pub struct MqttSink {
    cfg: MqttConfig,
    options: MqttOptions,
    catalog: Arc<Catalog>,
    stats: Arc<SinkStats>,
    /// Topic per machine and tag (layout tag) or per machine (layout machine).
    topics: Vec<Vec<Arc<str>>>,
    status_topics: Vec<Arc<str>>,
    gateway_topic: Arc<str>,
    units: Vec<Vec<Vec<u8>>>,
    machine_seq: Vec<u64>,
}

/// One `EventLoop::poll` that owns the event loop and hands it back with the event.
///
/// The poll must not be cancelled: dropped while connecting, it abandons a connection the broker
/// has already accepted (which then fires the last will) and opens another. So the sink keeps
/// this future alive across `select!` iterations instead of polling afresh in each.
pub(crate) type Polling =
    Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

pub(crate) fn poll_owned(mut eventloop: EventLoop) -> Polling {
    Box::pin(async move {
        let event = eventloop.poll().await;
        (eventloop, event)
    })
}

/// The pending poll's outcome; never resolves when there is none.
pub(crate) async fn next_event(
    polling: &mut Option<Polling>,
) -> (EventLoop, Result<Event, ConnectionError>) {
    match polling {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

fn qos(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

impl MqttSink {
    /// Prepares the sink of gateway `gateway` for the machines of `catalog`.
    pub fn new(
        cfg: MqttConfig,
        gateway: &str,
        catalog: Arc<Catalog>,
        stats: Arc<SinkStats>,
    ) -> Result<MqttSink, MqttError> {
        let prefix = cfg.topic_prefix.clone();
        let client_id = format!("shopfloor-{gateway}");
        let mut options = MqttOptions::new(client_id, cfg.url.host.clone(), cfg.url.port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(15))
            .set_inflight(WINDOW as u16)
            .set_request_channel_capacity(WINDOW + 16)
            .set_max_packet_size(1 << 20, 1 << 20);
        let gateway_topic: Arc<str> = encode::gateway_topic(&prefix, gateway).into();
        options.set_last_will(LastWill::new(
            gateway_topic.to_string(),
            encode::gateway_payload(false),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &cfg.username {
            let password = match &cfg.password_env {
                Some(env) => env.resolve()?,
                None => String::new(),
            };
            options.set_credentials(user.clone(), password);
        }
        if cfg.url.scheme == "mqtts" {
            let tls = tls::client_config(&cfg)?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        let mut topics = Vec::new();
        let mut status_topics = Vec::new();
        let mut units = Vec::new();
        for (_, m) in catalog.machines() {
            topics.push(match cfg.layout {
                Layout::Tag => m
                    .tags
                    .iter()
                    .map(|t| encode::tag_topic(&prefix, &m.id, &t.name).into())
                    .collect(),
                Layout::Machine => vec![encode::machine_topic(&prefix, &m.id).into()],
            });
            status_topics.push(encode::status_topic(&prefix, &m.id).into());
            units.push(
                m.tags
                    .iter()
                    .map(|t| encode::unit_suffix(t.unit.as_deref()))
                    .collect(),
            );
        }
        let machine_seq = vec![0; catalog.len()];
        Ok(MqttSink {
            cfg,
            options,
            catalog,
            stats,
            topics,
            status_topics,
            gateway_topic,
            units,
            machine_seq,
        })
    }

    fn enqueue(&self, outbox: &mut Outbox, topic: &Arc<str>, payload: Vec<u8>, retain: bool) {
        let q = if retain { 1 } else { self.cfg.qos };
        let dropped = outbox.push(Arc::clone(topic), Bytes::from(payload), q, retain);
        if dropped > 0 {
            SinkStats::add(&self.stats.dropped, dropped);
        }
    }

    fn enqueue_batch(&mut self, outbox: &mut Outbox, batch: &[Sample]) {
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
                    encode::tag_payload(&mut payload, s, unit);
                    let topic = Arc::clone(topic);
                    self.enqueue(outbox, &topic, payload, false);
                }
            }
            Layout::Machine => {
                // A poll cycle's samples share machine and timestamp and arrive together.
                for group in batch
                    .chunk_by(|a, b| a.machine == b.machine && a.timestamp_ms == b.timestamp_ms)
                {
                    let m = group[0].machine;
                    let (Some(info), Some(topic)) = (
                        self.catalog.machine(m),
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
                    encode::machine_payload(
                        &mut payload,
                        group[0].timestamp_ms,
                        self.machine_seq[m.index()],
                        values,
                    );
                    self.enqueue(outbox, &topic, payload, false);
                }
            }
        }
    }

    fn kind(&self, machine: usize) -> &str {
        u16::try_from(machine)
            .ok()
            .and_then(|i| self.catalog.machine(shopfloor_core::MachineId(i)))
            .map_or("", |m| m.kind.as_str())
    }

    fn enqueue_statuses(&self, outbox: &mut Outbox, now: &Statuses, published: &mut Statuses) {
        for (i, st) in now.iter().enumerate() {
            if st.state == MachineState::Connecting || published.get(i) == Some(st) {
                continue;
            }
            if let Some(topic) = self.status_topics.get(i) {
                let kind = self.kind(i);
                self.enqueue(outbox, topic, encode::status_payload(st, kind), true);
            }
            if let Some(slot) = published.get_mut(i) {
                *slot = st.clone();
            }
        }
    }

    /// Runs until `input` closes and everything queued is acknowledged, or until `flush_for`
    /// has passed since it closed. Announces the gateway online (retained, with an offline last
    /// will) on every connection, and offline when it stops.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Batch>,
        mut status: watch::Receiver<Statuses>,
        flush_for: Duration,
    ) {
        let (client, eventloop) = AsyncClient::new(self.options.clone(), WINDOW + 16);
        let mut polling = Some(poll_owned(eventloop));
        let mut idle: Option<EventLoop> = None;
        let mut outbox = Outbox::new(OUTBOX_CAPACITY, WINDOW);
        let mut published: Statuses = status
            .borrow()
            .iter()
            .map(|s| MachineStatus {
                state: MachineState::Connecting,
                ..s.clone()
            })
            .collect();
        let mut connected = false;
        let mut input_open = true;
        let mut status_open = true;
        let mut reconnect_at: Option<Instant> = None;
        let mut last_error: Option<String> = None;
        let mut flush_deadline: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        let far = Duration::from_secs(86_400 * 365);
        let url = self.cfg.url.to_string();
        loop {
            if connected {
                while let Some(m) = outbox.next_to_send() {
                    let sent = client.try_publish(
                        m.topic.to_string(),
                        qos(m.qos),
                        m.retain,
                        m.payload.to_vec(),
                    );
                    if sent.is_err() {
                        // Only when the event loop is gone; the reconnect path resends.
                        break;
                    }
                }
            }
            self.stats
                .backlog
                .store(outbox.len() as u64, Ordering::Relaxed);
            if !input_open && outbox.is_empty() {
                break;
            }
            let wait_reconnect = reconnect_at.unwrap_or_else(|| Instant::now() + far);
            let deadline = flush_deadline.unwrap_or_else(|| Instant::now() + far);
            tokio::select! {
                (el, ev) = next_event(&mut polling), if polling.is_some() => {
                    polling = None;
                    let failed = ev.is_err();
                    match ev {

                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            if ack.code == ConnectReturnCode::Success {
                                info!(broker = %url, "MQTT connected");
                                last_error = None;
                                connected = true;
                                backoff.reset();
                                outbox.on_reconnect();
                                let gw = Arc::clone(&self.gateway_topic);
                                self.enqueue(&mut outbox, &gw, encode::gateway_payload(true), true);
                                // A new connection republishes every known state.
                                for p in published.iter_mut() {
                                    p.state = MachineState::Connecting;
                                }
                                let now = status.borrow().clone();
                                self.enqueue_statuses(&mut outbox, &now, &mut published);
                            } else {
                                warn!(broker = %url, code = ?ack.code, "MQTT broker refused the connection");
                            }
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                            let before = outbox.acked();
                            outbox.on_sent(pkid);
                            SinkStats::add(&self.stats.sent, outbox.acked() - before);
                        }
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            if outbox.on_ack(ack.pkid) {
                                SinkStats::add(&self.stats.sent, 1);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let reason = match &e {
                                ConnectionError::ConnectionRefused(code) => format!(
                                    "broker refused the connection ({code:?}): check username, \
                                     password_env and the certificates"
                                ),
                                other => other.to_string(),
                            };
                            // A new reason is worth a warning; the same one again is not.
                            if connected || last_error.as_deref() != Some(reason.as_str()) {
                                warn!(broker = %url, error = %reason, "MQTT not connected; retrying");
                            } else {
                                debug!(broker = %url, error = %reason, "MQTT connect failed again");
                            }
                            last_error = Some(reason);
                            SinkStats::add(&self.stats.errors, 1);
                            connected = false;
                            reconnect_at = Some(Instant::now() + backoff.next_delay());
                        }
                    }
                    if failed {
                        idle = Some(el);
                    } else {
                        polling = Some(poll_owned(el));
                    }
                }
                _ = sleep_until(wait_reconnect), if reconnect_at.is_some() => {
                    reconnect_at = None;
                    polling = idle.take().map(poll_owned);
                }
                batch = input.recv(), if input_open => match batch {
                    Some(batch) => self.enqueue_batch(&mut outbox, &batch),
                    None => {
                        input_open = false;
                        flush_deadline = Some(Instant::now() + flush_for);
                    }
                },
                changed = status.changed(), if status_open => match changed {
                    Ok(()) => {
                        let now = status.borrow_and_update().clone();
                        self.enqueue_statuses(&mut outbox, &now, &mut published);
                    }
                    Err(_) => status_open = false,
                },
                _ = sleep_until(deadline), if flush_deadline.is_some() => {
                    warn!(unsent = outbox.len(), "MQTT flush timed out; unsent messages dropped");
                    SinkStats::add(&self.stats.dropped, outbox.len() as u64);
                    break;
                }
            }
        }
        if connected && let Some(polling) = polling {
            self.say_goodbye(&client, polling).await;
        }
    }

    /// Publishes the gateway and its machines offline (retained) and disconnects cleanly.
    async fn say_goodbye(&self, client: &AsyncClient, mut polling: Polling) {
        let stopped = MachineStatus {
            state: MachineState::Offline,
            since_ms: now_ms(),
            error: Some("gateway stopped".into()),
        };
        let mut expected = 0;
        for (i, topic) in self.status_topics.iter().enumerate() {
            let payload = encode::status_payload(&stopped, self.kind(i));
            if client
                .try_publish(topic.to_string(), QoS::AtLeastOnce, true, payload)
                .is_ok()
            {
                expected += 1;
            }
        }
        let offline = encode::gateway_payload(false);
        if client
            .try_publish(
                self.gateway_topic.to_string(),
                QoS::AtLeastOnce,
                true,
                offline,
            )
            .is_ok()
        {
            expected += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut acked = 0;
        let mut disconnecting = false;
        loop {
            if acked >= expected && !disconnecting {
                // DISCONNECT only after the acks, so the broker does not fire the last will.
                let _ = client.try_disconnect();
                disconnecting = true;
            }
            let Ok((el, ev)) = tokio::time::timeout_at(deadline, polling).await else {
                return;
            };
            match ev {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
            polling = poll_owned(el);
        }
    }
}
