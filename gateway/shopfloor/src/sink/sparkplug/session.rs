//! The edge node's broker connections over time.
//!
//! Each connection is a new MQTT client whose will is the NDEATH of a new `bdSeq`; its event
//! loop runs as its own task and reports what matters (connected, a rebirth command, the
//! connection lost), so publishing never waits on a loop that nobody polls. After CONNACK the
//! node subscribes to its NCMD topic and publishes its births, then the readings kept while it
//! was away (as historical data), then the live stream. With a primary host, the births wait
//! until its STATE says online; when it says offline, the node says goodbye and moves on. A
//! lost connection goes to the next broker of `urls` after a backoff; readings meanwhile are
//! kept under the sink's bound (`keep`), dropped and counted beyond it as its `when_full` says.
//! A clean stop publishes NDEATH before DISCONNECT.

use crate::sink::intake::{Bound, Intake, Queue};
use crate::sink::{Batch, SinkStats, Throttle, readings};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use shopfloor_contract::sparkplug::node::asks_rebirth;
use shopfloor_contract::sparkplug::{
    HostState, MessageType, Node, Outgoing, PrimaryHost, parse_state,
};
use shopfloor_core::backoff::Backoff;
use shopfloor_core::time::now_ms;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Requests the client queues for its event loop before `publish` waits.
const CLIENT_QUEUE: usize = 4096;

/// The node, its brokers and what it keeps through an outage.
#[derive(Debug)]
pub struct Session {
    /// The rules.
    pub node: Node,
    /// Brokers, tried in turn.
    pub brokers: Vec<MqttOptions>,
    /// The node's NCMD topic.
    pub ncmd: String,
    /// The primary host whose STATE gates the births, if any.
    pub host_id: Option<String>,
    /// Its STATE topic.
    pub state: Option<String>,
    /// What is kept through an outage, at most, and what goes beyond (the sink's bound).
    pub keep: Bound,
    /// Counters.
    pub stats: Arc<SinkStats>,
    /// Where the devices of machines added by a reload come from.
    pub learner: super::spec::Learner,
}

/// What a connection's event loop reports.
#[derive(Debug)]
enum Report {
    Up,
    Rebirth,
    Host(HostState),
    Down(String),
}

/// How a connection ended.
enum End {
    /// The input closed: the gateway stops.
    Stop,
    /// The broker is gone or refused us.
    Lost,
    /// The primary host is not on this broker.
    HostOffline,
}

/// Batches waiting for the next connection, oldest first, under the sink's bound.
struct Kept {
    queue: Queue,
    throttle: Throttle,
}

impl Kept {
    fn push(&mut self, batch: Batch, stats: &SinkStats) {
        let overflow = self.queue.push(batch);
        let n: u64 = overflow.batches.iter().map(|b| readings(b)).sum();
        if n > 0 {
            SinkStats::add(&stats.dropped, n);
            if let Some(repeats) = self.throttle.ready() {
                warn!(
                    sink = "sparkplug",
                    samples = n,
                    repeats,
                    "broker away too long: readings dropped as when_full says"
                );
            }
        }
        stats
            .backlog
            .store(self.queue.samples() as u64, Ordering::Relaxed);
    }
}

impl Session {
    /// Runs until `input` closes, then says goodbye within `budget`.
    pub async fn run(mut self, mut input: Intake, budget: Duration) {
        let mut kept = Kept {
            queue: Queue::new(self.keep),
            throttle: Throttle::new(Duration::from_secs(10)),
        };
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for broker in (0..self.brokers.len()).cycle() {
            match self.connection(broker, &mut input, &mut kept, budget).await {
                End::Stop => return,
                End::Lost | End::HostOffline => {}
            }
            let pause = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    batch = input.recv() => match batch {
                        Some(batch) => self.away(batch, &mut kept),
                        None => return,
                    },
                }
            }
            if kept.queue.is_empty() {
                backoff.reset();
            }
        }
    }

    /// A batch that arrives while no broker takes it: the node learns it, the batch waits.
    fn away(&mut self, batch: Batch, kept: &mut Kept) {
        let mut none = Vec::new();
        self.learner
            .learn(&mut self.node, &batch, now_ms(), &mut none);
        self.node.take(&batch, now_ms(), &mut none);
        kept.push(batch, &self.stats);
    }

    /// One connection to broker `index`, from CONNECT until it is lost or the gateway stops.
    async fn connection(
        &mut self,
        index: usize,
        input: &mut Intake,
        kept: &mut Kept,
        budget: Duration,
    ) -> End {
        let will = self.node.session();
        let mut options = self.brokers[index].clone();
        options.set_last_will(LastWill::new(
            &will.topic,
            will.payload,
            QoS::AtLeastOnce,
            false,
        ));
        let broker = format!(
            "{}:{}",
            options.broker_address().0,
            options.broker_address().1
        );
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_QUEUE);
        // rumqttc writes and flushes each message on its own; with Nagle's algorithm the tail
        // of every DDATA would wait for the broker's delayed ACK (p99 28 ms in end_to_end).
        // A node sends one message per machine and poll, so the extra segments cost nothing.
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (tx, mut reports) = mpsc::channel(16);
        let driver = tokio::spawn(drive(eventloop, tx, self.state.clone()));
        let end = self
            .serve(&client, &mut reports, input, kept, &broker)
            .await;
        if let End::Stop | End::HostOffline = end {
            self.goodbye(&client, &mut reports, budget).await;
        }
        self.node.disconnected();
        driver.abort();
        end
    }

    async fn serve(
        &mut self,
        client: &AsyncClient,
        reports: &mut mpsc::Receiver<Report>,
        input: &mut Intake,
        kept: &mut Kept,
        broker: &str,
    ) -> End {
        // Until CONNACK, batches wait with the rest.
        loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(Report::Up) => break,
                    Some(Report::Rebirth | Report::Host(_)) => {}
                    Some(Report::Down(e)) => return self.lost(broker, &e),
                    None => return self.lost(broker, "connection ended"),
                },
                batch = input.recv() => match batch {
                    Some(batch) => self.away(batch, kept),
                    None => return End::Stop,
                },
            }
        }
        let mut host = PrimaryHost::default();
        if let Err(e) = self.subscribe(client).await {
            return self.lost(broker, &e);
        }
        if let Some(end) = self
            .until_host_online(&mut host, reports, input, kept, broker)
            .await
        {
            return end;
        }
        if let Err(e) = self.birth(client, kept, broker).await {
            return self.lost(broker, &e);
        }
        let mut out = Vec::new();
        loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(Report::Rebirth) => {
                        info!(event = "sparkplug_rebirth", sink = "sparkplug", "Sparkplug: rebirth requested");
                        let mut out = self.node.births(now_ms());
                        if let Err(e) = publish(client, &mut out).await {
                            return self.lost(broker, &e);
                        }
                    }
                    Some(Report::Host(state)) => {
                        if host.observe(state) && !host.online() {
                            return self.host_offline(broker);
                        }
                    }
                    Some(Report::Up) => {}
                    Some(Report::Down(e)) => return self.lost(broker, &e),
                    None => return self.lost(broker, "connection ended"),
                },
                batch = input.recv() => match batch {
                    Some(batch) => {
                        self.learner.learn(&mut self.node, &batch, now_ms(), &mut out);
                        self.node.take(&batch, now_ms(), &mut out);
                        if let Err(e) = publish(client, &mut out).await {
                            self.node.disconnected();
                            kept.push(batch, &self.stats);
                            return self.lost(broker, &e);
                        }
                        SinkStats::add(&self.stats.sent, readings(&batch));
                    }
                    None => return End::Stop,
                },
            }
        }
    }

    /// NCMD, and the primary host's STATE when one is configured.
    async fn subscribe(&self, client: &AsyncClient) -> Result<(), String> {
        client
            .subscribe(&self.ncmd, QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(state) = &self.state {
            client
                .subscribe(state, QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// With a primary host, waits (readings kept meanwhile) until its STATE says online.
    /// `None` when the births may go out; otherwise how the connection ends: with several
    /// brokers, a host that says offline here sends the node to the next one.
    async fn until_host_online(
        &mut self,
        host: &mut PrimaryHost,
        reports: &mut mpsc::Receiver<Report>,
        input: &mut Intake,
        kept: &mut Kept,
        broker: &str,
    ) -> Option<End> {
        let id = self.host_id.as_deref()?;
        self.stats.health.failing(
            &format!("waiting for primary host {id} to be online"),
            false,
        );
        info!(
            event = "sparkplug_waiting_for_host",
            sink = "sparkplug",
            broker,
            primary_host = id,
            "Sparkplug: connected; births wait until the primary host says it is online"
        );
        loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(Report::Host(state)) => {
                        if !host.observe(state) {
                            continue;
                        }
                        if host.online() {
                            return None;
                        }
                        if self.brokers.len() > 1 {
                            return Some(self.host_offline(broker));
                        }
                    }
                    Some(Report::Up | Report::Rebirth) => {}
                    Some(Report::Down(e)) => return Some(self.lost(broker, &e)),
                    None => return Some(self.lost(broker, "connection ended")),
                },
                batch = input.recv() => match batch {
                    Some(batch) => self.away(batch, kept),
                    None => return Some(End::Stop),
                },
            }
        }
    }

    /// NBIRTH and the DBIRTHs, then what was kept, as history.
    async fn birth(
        &mut self,
        client: &AsyncClient,
        kept: &mut Kept,
        broker: &str,
    ) -> Result<(), String> {
        let now = now_ms();
        let mut out = self.node.births(now);
        let backlog: Vec<Batch> = std::iter::from_fn(|| kept.queue.pop()).collect();
        for batch in &backlog {
            self.node.historical(batch, now, &mut out);
        }
        if let Err(e) = publish(client, &mut out).await {
            // Sent again as history on the next connection: late, maybe twice, never lost.
            for batch in backlog {
                kept.push(batch, &self.stats);
            }
            return Err(e);
        }
        let sent: u64 = backlog.iter().map(|b| readings(b)).sum();
        SinkStats::add(&self.stats.sent, sent);
        self.stats.backlog.store(0, Ordering::Relaxed);
        self.stats.health.delivering();
        info!(
            event = "sparkplug_online",
            sink = "sparkplug",
            broker,
            historical = sent,
            "Sparkplug: births published"
        );
        Ok(())
    }

    /// The primary host said it is offline on this broker: say goodbye and move on.
    fn host_offline(&mut self, broker: &str) -> End {
        let id = self.host_id.as_deref().unwrap_or_default();
        self.stats
            .health
            .failing(&format!("primary host {id} is offline on {broker}"), false);
        warn!(
            event = "sparkplug_host_offline",
            sink = "sparkplug",
            broker,
            primary_host = id,
            "Sparkplug: the primary host is offline: NDEATH, then the next broker"
        );
        End::HostOffline
    }

    fn lost(&mut self, broker: &str, error: &str) -> End {
        self.node.disconnected();
        SinkStats::add(&self.stats.errors, 1);
        self.stats.health.failing(error, false);
        warn!(
            event = "sparkplug_offline",
            sink = "sparkplug",
            broker,
            error,
            "Sparkplug: broker connection lost"
        );
        End::Lost
    }

    /// NDEATH, then DISCONNECT, and a moment for the event loop to write both.
    async fn goodbye(
        &mut self,
        client: &AsyncClient,
        reports: &mut mpsc::Receiver<Report>,
        budget: Duration,
    ) {
        // Without births there is nothing to declare dead, but DISCONNECT still keeps the
        // will from firing for a session nobody saw.
        let mut out = Vec::new();
        if self.node.is_live() {
            out.push(self.node.death());
        }
        if publish(client, &mut out).await.is_err() || client.disconnect().await.is_err() {
            return;
        }
        let closed = async {
            while let Some(report) = reports.recv().await {
                if let Report::Down(_) = report {
                    break;
                }
            }
        };
        if tokio::time::timeout(budget.min(Duration::from_secs(2)), closed)
            .await
            .is_err()
        {
            debug!("Sparkplug: the broker did not close the connection in time");
        }
    }
}

/// Hands every message of `out` to the client, in order (NDEATH at QoS 1, the rest at QoS 0
/// as the specification asks), leaving `out` empty.
async fn publish(client: &AsyncClient, out: &mut Vec<Outgoing>) -> Result<(), String> {
    for m in out.drain(..) {
        let qos = match m.kind {
            MessageType::NDeath => QoS::AtLeastOnce,
            _ => QoS::AtMostOnce,
        };
        client
            .publish(m.topic, qos, false, m.payload)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Polls a connection's event loop until the connection fails, reporting what the session
/// needs. It never reconnects by itself: the session makes a new client, with a new will.
async fn drive(mut eventloop: EventLoop, reports: mpsc::Sender<Report>, state: Option<String>) {
    loop {
        let report = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Report::Up,
            Ok(Event::Incoming(Packet::Publish(p))) if state.as_deref() == Some(&p.topic) => {
                match parse_state(&p.payload) {
                    Ok(s) => Report::Host(s),
                    Err(error) => {
                        warn!(sink = "sparkplug", topic = %p.topic, %error, "Sparkplug: STATE ignored");
                        continue;
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if asks_rebirth(&p.payload) => Report::Rebirth,
            Ok(_) => continue,
            Err(e) => {
                let _ = reports.send(Report::Down(e.to_string())).await;
                return;
            }
        };
        if reports.send(report).await.is_err() {
            return;
        }
    }
}
