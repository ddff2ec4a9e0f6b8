//! The task of one OPC UA machine: connect, subscribe (or poll), turn data changes into
//! samples, and rebuild everything when the server goes away.
//!
//! Never stuck: the library's own reconnect is switched off (retry limit 0) and this task is the
//! one supervisor. Any loss of the connection (a closed socket, failed keep-alives, a server
//! restart) ends the session; the task marks every tag bad once, reports the machine offline,
//! waits with backoff and jitter, and builds a new session from nothing: endpoints, namespace
//! array (so `nsu=` ids follow a renumbered server), subscription, monitored items. A server
//! restart therefore costs one reconnect, never a stale subscription that silently delivers
//! nothing. Every request has the machine's timeout.
//!
//! A node the server does not know is reported once by id and its tag goes bad; the other
//! tags keep flowing. Monitored items are created in chunks the size the server allows per
//! call; when a subscription is full, the rest go into another one.

use crate::convert::reading;
use crate::exception;
use crate::node::NodeRef;
use crate::publish;
use crate::security;
use opcua::client::services::CreateMonitoredItems;
use opcua::client::{Client, ClientBuilder, IdentityToken, Session, SessionPollResult, UARequest};
use opcua::crypto::{CertificateStore, SecurityPolicy, X509};
use opcua::types::{
    AttributeId, DataChangeNotification, DataValue, EndpointDescription, MessageSecurityMode,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, NotificationMessage,
    QualifiedName, ReadValueId, StatusCode, TimestampsToReturn, UserTokenPolicy, VariableId,
    Variant,
};
use shopfloor_core::backoff::Backoff;
use shopfloor_core::emit::Publish;
use shopfloor_core::phase;
use shopfloor_core::ring::Producer;
use shopfloor_core::{Emitter, MachineId, StatusReporter};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How a machine's values are fetched.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// A subscription: the server reports changes (the default).
    #[default]
    Subscribe,
    /// One batched Read of every node per interval.
    Poll,
}

/// Who the gateway is to the server.
#[derive(Clone)]
pub enum Identity {
    /// No user.
    Anonymous,
    /// A user name and its password (taken from the environment).
    UserName(String, String),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::UserName(u, _) => write!(f, "UserName({u:?}, <redacted>)"),
        }
    }
}

/// Everything the driver needs to know about one machine.
#[derive(Clone, Debug)]
pub struct OpcuaMachine {
    /// The machine's id in the catalog.
    pub id: MachineId,
    /// The configured id, for logs.
    pub name: String,
    /// The gateway's name: part of its application URI and session name.
    pub gateway: String,
    /// `opc.tcp://host:port[/path]`.
    pub endpoint: String,
    /// Security policy.
    pub policy: SecurityPolicy,
    /// Message security mode.
    pub security_mode: MessageSecurityMode,
    /// Who connects.
    pub identity: Identity,
    /// Trust whatever certificate the server shows.
    pub trust_server_certificate: bool,
    /// The gateway's certificates.
    pub pki_dir: PathBuf,
    /// Subscribe or poll.
    pub mode: Mode,
    /// Publishing interval (subscribe) or poll interval.
    pub interval: Duration,
    /// Limit on connecting and on every request.
    pub timeout: Duration,
    /// The nodes; a node's index here is its [`TagId`].
    pub nodes: Vec<NodeRef>,
    /// Every reading, or report by exception (deadbands are also sent to the server).
    pub publish: Publish,
}

/// Why a session ended or could not be set up.
#[derive(Debug, Error)]
pub enum OpcuaError {
    /// The client could not be configured.
    #[error("client set-up: {0}")]
    Setup(String),
    /// Connecting took longer than the timeout.
    #[error("{what}: no answer within {limit:?}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The timeout.
        limit: Duration,
    },
    /// The server offers no endpoint with the configured security.
    #[error("connect {endpoint}: {message}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The reason.
        message: String,
    },
    /// The server does not trust the gateway's certificate.
    #[error(
        "the server does not trust this gateway's certificate: add {own} to the server's \
         trusted certificates"
    )]
    NotTrustedByServer {
        /// The gateway's certificate.
        own: String,
    },
    /// The server's certificate is not trusted.
    #[error(
        "the server's certificate is not trusted: move {rejected} into {trusted} to trust it, \
         or set trust_server_certificate = true for this machine; the server must also trust \
         this gateway's certificate {own}"
    )]
    Untrusted {
        /// The gateway's certificate.
        own: String,
        /// Where the store put it.
        rejected: String,
        /// Where it must go.
        trusted: String,
    },
    /// A service call failed.
    #[error("{what}: {status}")]
    Service {
        /// The call.
        what: &'static str,
        /// The status.
        status: StatusCode,
    },
    /// The connection was lost.
    #[error("connection lost: {0}")]
    Lost(StatusCode),
}

/// The machine's emitter, shared between the task and the subscription callback, which runs
/// inside the session's event loop.
type Shared = Arc<Mutex<Emitter>>;

/// A notification message to samples: a whole message at a time, one lock per message.
fn deliver(emitter: &Shared, notification: NotificationMessage) {
    let Some(data) = notification.notification_data else {
        return;
    };
    let Ok(mut e) = emitter.lock() else { return };
    // One gateway time for the whole message, taken only if an item comes without one.
    let mut now = None;
    for object in data {
        let Some(changes) = object.into_inner_as::<DataChangeNotification>() else {
            continue;
        };
        for item in changes.monitored_items.into_iter().flatten() {
            // Client handles are tag index + 1 (0 would be given one by the library).
            let tag = (item.client_handle as usize).wrapping_sub(1);
            let (ts, value, quality) = reading(&item.value, || *now.get_or_insert_with(|| e.now()));
            e.reading(tag, ts, value, quality);
        }
    }
    e.flush();
}

/// What the session's event loop tells the task.
#[derive(Debug)]
enum Link {
    Up,
    Down(StatusCode),
}

struct Driver {
    machine: OpcuaMachine,
    emitter: Shared,
    /// Nodes already reported missing: told once, not on every reconnect.
    reported: HashSet<usize>,
    /// Subscriptions of the current session.
    subscriptions: usize,
    /// Tags whose node the server monitors only without a deadband filter.
    unfiltered: HashSet<usize>,
}

fn read_id(node: NodeId) -> ReadValueId {
    ReadValueId {
        node_id: node,
        attribute_id: AttributeId::Value as u32,
        index_range: Default::default(),
        data_encoding: QualifiedName::null(),
    }
}

impl Driver {
    /// Runs `f` on the emitter and pushes what it queued.
    fn emit(&self, f: impl FnOnce(&mut Emitter)) {
        if let Ok(mut e) = self.emitter.lock() {
            f(&mut e);
            e.flush();
        }
    }

    fn missing(&mut self, tag: usize, why: &str) {
        if self.reported.insert(tag) {
            warn!(
                machine = %self.machine.name,
                node = %self.machine.nodes[tag],
                "node left out: {why}"
            );
        }
        self.emit(|e| {
            let ts = e.now();
            e.bad_once(tag, ts);
        });
    }

    fn client(&self) -> Result<Client, OpcuaError> {
        let m = &self.machine;
        // Keep-alives notice a half-open connection: two missed in a row end the session.
        let keep_alive = m
            .timeout
            .clamp(Duration::from_millis(500), Duration::from_secs(10));
        ClientBuilder::new()
            .application_name(format!("shopfloor {}", m.gateway))
            .application_uri(security::application_uri(&m.gateway))
            .product_uri("urn:iqblvd:shopfloor")
            .pki_dir(m.pki_dir.clone())
            .create_sample_keypair(false)
            .trust_server_certs(m.trust_server_certificate)
            .verify_server_certs(true)
            .session_retry_limit(0)
            .session_name(format!("shopfloor {} {}", m.gateway, m.name))
            .session_timeout(60_000)
            .keep_alive_interval(keep_alive)
            .max_failed_keep_alive_count(2)
            .request_timeout(m.timeout)
            .publish_timeout(m.timeout + m.interval * 3)
            .max_message_size(16 << 20)
            .max_chunk_count(512)
            .client()
            .map_err(|e| OpcuaError::Setup(e.join("; ")))
    }

    /// The error for a failed connect. `server_cert` is the server's certificate as its
    /// endpoint shows it: whether it was filed under `rejected/` tells whose trust is missing.
    fn connect_error(&self, message: String, server_cert: Option<&X509>) -> OpcuaError {
        let m = &self.machine;
        let certificate = message.contains("BadCertificate")
            || message.contains("Untrusted")
            || message.contains("BadSecurityChecksFailed");
        if !certificate {
            return OpcuaError::Connect {
                endpoint: m.endpoint.clone(),
                message,
            };
        }
        // Both sides refuse with the same status code, and either may speak first: while the
        // server's certificate is not in trusted/, say that first and name ours as well.
        let own = m.pki_dir.join("own/cert.der").display().to_string();
        let name = server_cert.map(CertificateStore::cert_file_name);
        match name {
            Some(name)
                if !m.trust_server_certificate
                    && !m.pki_dir.join("trusted").join(&name).exists() =>
            {
                OpcuaError::Untrusted {
                    rejected: m.pki_dir.join("rejected").join(&name).display().to_string(),
                    trusted: m.pki_dir.join("trusted").display().to_string(),
                    own,
                }
            }
            _ => OpcuaError::NotTrustedByServer { own },
        }
    }

    /// One session from connect to loss. Returns why it ended; `None` on shutdown.
    async fn session(
        &mut self,
        client: &mut Client,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> Option<OpcuaError> {
        let m = &self.machine;
        let limit = m.timeout;
        let endpoint: EndpointDescription = (
            m.endpoint.as_str(),
            m.policy.to_uri(),
            m.security_mode,
            UserTokenPolicy::anonymous(),
        )
            .into();
        let identity = match &m.identity {
            Identity::Anonymous => IdentityToken::Anonymous,
            Identity::UserName(u, p) => IdentityToken::UserName(u.clone(), p.clone().into()),
        };
        let made = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = timeout(limit, client.connect_to_matching_endpoint(endpoint, identity)) => r,
        };
        let (session, event_loop) = match made {
            Err(_) => {
                return Some(OpcuaError::Timeout {
                    what: "get endpoints",
                    limit,
                });
            }
            Ok(Err(e)) => return Some(self.connect_error(e.to_string(), None)),
            Ok(Ok(x)) => x,
        };
        let (tx, mut link) = mpsc::channel(4);
        let looper = tokio::spawn(async move {
            use futures_util::StreamExt;
            let events = event_loop.enter();
            futures_util::pin_mut!(events);
            loop {
                let event = match events.next().await {
                    Some(Ok(SessionPollResult::Reconnected(_))) => Link::Up,
                    Some(Ok(SessionPollResult::ConnectionLost(c))) => Link::Down(c),
                    Some(Ok(SessionPollResult::ReconnectFailed(c))) | Some(Err(c)) => Link::Down(c),
                    None => Link::Down(StatusCode::BadConnectionClosed),
                    Some(Ok(_)) => continue,
                };
                let down = matches!(event, Link::Down(_));
                if tx.send(event).await.is_err() || down {
                    return;
                }
            }
        });
        let ended = self.connected(&session, &mut link, backoff, shutdown).await;
        if ended.is_none() {
            // Shutdown: close the session on the server (and its subscriptions), briefly.
            let _ = timeout(Duration::from_secs(1), session.disconnect()).await;
        }
        looper.abort();
        let _ = looper.await;
        ended
    }

    async fn connected(
        &mut self,
        session: &Arc<Session>,
        link: &mut mpsc::Receiver<Link>,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> Option<OpcuaError> {
        let limit = self.machine.timeout * 2;
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            l = timeout(limit, link.recv()) => l,
        };
        match first {
            Err(_) => {
                return Some(OpcuaError::Timeout {
                    what: "open session",
                    limit,
                });
            }
            Ok(Some(Link::Up)) => {}
            Ok(Some(Link::Down(c))) => {
                let cert = &session.endpoint_info().endpoint.server_certificate;
                let cert = (!cert.is_null()).then(|| X509::from_byte_string(cert).ok());
                return Some(
                    self.connect_error(format!("open session: {c}"), cert.flatten().as_ref()),
                );
            }
            Ok(None) => return Some(OpcuaError::Lost(StatusCode::BadConnectionClosed)),
        }
        debug!(machine = %self.machine.name, "session open");
        let ready = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = self.set_up(session) => r,
        };
        let nodes = match ready {
            Ok(nodes) => nodes,
            Err(e) => return Some(e),
        };
        backoff.reset();
        self.emit(Emitter::online);
        match self.machine.mode {
            Mode::Subscribe => tokio::select! {
                _ = shutdown.cancelled() => None,
                l = link.recv() => Some(OpcuaError::Lost(match l {
                    Some(Link::Down(c)) => c,
                    _ => StatusCode::BadConnectionClosed,
                })),
                s = publish::run(session, self.subscriptions, |m| deliver(&self.emitter, m)) => {
                    Some(OpcuaError::Service { what: "publish", status: s })
                }
                () = exception::heartbeats(&self.emitter, Duration::from_secs(1)) => None,
            },
            Mode::Poll => tokio::select! {
                _ = shutdown.cancelled() => None,
                l = link.recv() => Some(OpcuaError::Lost(match l {
                    Some(Link::Down(c)) => c,
                    _ => StatusCode::BadConnectionClosed,
                })),
                e = self.poll(session, &nodes) => Some(e),
            },
        }
    }

    /// Resolves the nodes and, in subscribe mode, creates the subscriptions. Returns the
    /// resolved nodes with their tag index.
    async fn set_up(&mut self, session: &Session) -> Result<Vec<(usize, NodeId)>, OpcuaError> {
        self.subscriptions = 0;
        let needs_uris = self
            .machine
            .nodes
            .iter()
            .any(|n| matches!(n.namespace, crate::node::Namespace::Uri(_)));
        let namespaces = if needs_uris {
            namespace_array(session).await?
        } else {
            Vec::new()
        };
        let mut nodes = Vec::with_capacity(self.machine.nodes.len());
        for (tag, n) in self.machine.nodes.clone().iter().enumerate() {
            match n.resolve(&namespaces) {
                Ok(id) => nodes.push((tag, id)),
                Err(e) => self.missing(tag, &e.to_string()),
            }
        }
        if self.machine.mode == Mode::Subscribe {
            self.subscribe(session, &nodes).await?;
        }
        Ok(nodes)
    }

    async fn new_subscription(&mut self, session: &Session) -> Result<u32, OpcuaError> {
        let id = publish::create_subscription(session, self.machine.interval)
            .await
            .map_err(|status| OpcuaError::Service {
                what: "create subscription",
                status,
            })?;
        self.subscriptions += 1;
        Ok(id)
    }

    /// Creates the monitored items in chunks the server takes per call. A server that refuses
    /// more items in a subscription (per item, or the whole call) gets another subscription;
    /// a call refused outright on an empty subscription is retried in halves.
    async fn subscribe(
        &mut self,
        session: &Session,
        nodes: &[(usize, NodeId)],
    ) -> Result<(), OpcuaError> {
        let mut size = operation_limit(
            session,
            VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
        )
        .await;
        let sampling = self.machine.interval.as_secs_f64() * 1000.0;
        let mut rest: std::collections::VecDeque<(usize, NodeId)> = nodes.iter().cloned().collect();
        let mut subscription = None;
        let mut in_subscription = 0usize;
        while !rest.is_empty() {
            let sub = match subscription {
                Some(s) => s,
                None => {
                    let s = self.new_subscription(session).await?;
                    subscription = Some(s);
                    in_subscription = 0;
                    s
                }
            };
            let chunk: Vec<(usize, NodeId)> = rest.drain(..size.min(rest.len())).collect();
            let requests = chunk
                .iter()
                .map(|(tag, id)| MonitoredItemCreateRequest {
                    item_to_monitor: read_id(id.clone()),
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        client_handle: *tag as u32 + 1,
                        sampling_interval: sampling,
                        filter: if self.unfiltered.contains(tag) {
                            Default::default()
                        } else {
                            exception::filter(&self.machine.publish, *tag)
                        },
                        queue_size: 1,
                        discard_oldest: true,
                    },
                })
                .collect();
            let created = CreateMonitoredItems::new(sub, session)
                .timestamps_to_return(TimestampsToReturn::Both)
                .items_to_create(requests)
                .send(session.channel())
                .await;
            match created {
                Ok(created) => {
                    let results = created.results;
                    let mut full = Vec::new();
                    for ((tag, id), item) in chunk.into_iter().zip(results) {
                        let status = item.result.status_code;
                        if status == StatusCode::BadTooManyMonitoredItems {
                            full.push((tag, id));
                        } else if status.is_good() {
                            in_subscription += 1;
                        } else if exception::refused_filter(status) && self.unfiltered.insert(tag) {
                            warn!(
                                machine = %self.machine.name,
                                node = %self.machine.nodes[tag],
                                "the server takes no deadband on this node ({status}); \
                                 the gateway filters it"
                            );
                            rest.push_back((tag, id));
                        } else {
                            self.missing(tag, &status.to_string());
                        }
                    }
                    if !full.is_empty() {
                        if in_subscription == 0 {
                            for (tag, _) in full {
                                self.missing(tag, "the server takes no more monitored items");
                            }
                            continue;
                        }
                        subscription = None;
                        for item in full.into_iter().rev() {
                            rest.push_front(item);
                        }
                    }
                }
                Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems => {
                    for item in chunk.into_iter().rev() {
                        rest.push_front(item);
                    }
                    if in_subscription > 0 {
                        subscription = None;
                    } else if size > 1 {
                        size /= 2;
                    } else {
                        for (tag, _) in std::mem::take(&mut rest) {
                            self.missing(tag, "the server takes no more monitored items");
                        }
                    }
                }
                Err(e) => {
                    return Err(OpcuaError::Service {
                        what: "create monitored items",
                        status: e.status(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads every node each interval until a read fails.
    async fn poll(&mut self, session: &Session, nodes: &[(usize, NodeId)]) -> OpcuaError {
        let per_read = operation_limit(
            session,
            VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        )
        .await;
        let ids: Vec<ReadValueId> = nodes.iter().map(|(_, id)| read_id(id.clone())).collect();
        // Machines with the same interval poll at spread-out moments, not in one burst.
        let every = self.machine.interval;
        let first = tokio::time::Instant::now() + phase::offset(self.machine.id.index(), every);
        let mut ticker = tokio::time::interval_at(first, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            let started = tokio::time::Instant::now();
            let mut values: Vec<DataValue> = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(per_read) {
                match session.read(chunk, TimestampsToReturn::Both, 0.0).await {
                    Ok(v) if v.len() == chunk.len() => values.extend(v),
                    Ok(_) => {
                        return OpcuaError::Service {
                            what: "read",
                            status: StatusCode::BadUnexpectedError,
                        };
                    }
                    Err(e) => {
                        return OpcuaError::Service {
                            what: "read",
                            status: e.status(),
                        };
                    }
                }
            }
            self.emit(|e| {
                e.poll_done(started.elapsed());
                let mut now = None;
                for ((tag, _), dv) in nodes.iter().zip(&values) {
                    let (ts, value, quality) = reading(dv, || *now.get_or_insert_with(|| e.now()));
                    e.reading(*tag, ts, value, quality);
                }
            });
        }
    }
}

/// The server's namespace array: index → URI.
async fn namespace_array(session: &Session) -> Result<Vec<String>, OpcuaError> {
    let fail = |status| OpcuaError::Service {
        what: "read namespace array",
        status,
    };
    let values = session
        .read(
            &[read_id(VariableId::Server_NamespaceArray.into())],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(|e| fail(e.status()))?;
    match values.into_iter().next().and_then(|dv| dv.value) {
        Some(Variant::Array(a)) => Ok(a
            .values
            .into_iter()
            .map(|v| match v {
                Variant::String(s) => s.value().clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect()),
        _ => Err(fail(StatusCode::BadTypeMismatch)),
    }
}

/// An operation limit of the server; 0 or unreadable means "no limit", taken as 1000 so one
/// request stays a reasonable size.
async fn operation_limit(session: &Session, which: VariableId) -> usize {
    let read = session
        .read(&[read_id(which.into())], TimestampsToReturn::Neither, 0.0)
        .await;
    let n = match read.ok().and_then(|v| v.into_iter().next()?.value) {
        Some(Variant::UInt32(n)) => n as usize,
        _ => 0,
    };
    if n == 0 { 1000 } else { n.min(1000) }
}

/// Runs one machine until `shutdown` is cancelled. Never returns early: a server that is down,
/// absent at start-up or restarted is retried forever with backoff.
pub async fn run(
    machine: OpcuaMachine,
    producer: Producer,
    status: Arc<dyn StatusReporter>,
    shutdown: CancellationToken,
) {
    let emitter = Emitter::new(
        machine.id,
        &machine.name,
        machine.nodes.len(),
        producer,
        status,
    )
    .with_publish(machine.publish.clone());
    let mut d = Driver {
        machine,
        emitter: Arc::new(Mutex::new(emitter)),
        reported: HashSet::new(),
        subscriptions: 0,
        unfiltered: HashSet::new(),
    };
    d.emit(Emitter::connecting);
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut client = match d.client() {
        Ok(c) => c,
        Err(e) => {
            // Only a broken pki folder gets here; say so and keep the machine visible.
            d.emit(|em| em.offline(e.to_string()));
            shutdown.cancelled().await;
            return;
        }
    };
    loop {
        let Some(error) = d.session(&mut client, &mut backoff, &shutdown).await else {
            return;
        };
        d.emit(|e| e.offline(error.to_string()));
        let delay = backoff.next_delay();
        debug!(machine = %d.machine.name, ?delay, "reconnecting after backoff");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
