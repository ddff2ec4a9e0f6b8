//! The HTTP server of a running gateway: started with its live store (a sink), and listening
//! anew, with the same store and streams, when a reload changes `[gateway] http`.

use super::StartError;
use super::sinks::Sinks;
use crate::config::Config;
use crate::http::HttpState;
use crate::kpi::KpiBoard;
use crate::metrics::Metrics;
use crate::sink::live::{LiveSink, LiveStore};
use crate::sink::{SinkContext, SinkStats};
use crate::status::StatusBoard;
use crate::tasks::{TaskPanic, Tasks};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Points of history per tag at most, whatever the poll rate: the window in this many steps
/// (one reading a second for the default 10 minutes).
const LIVE_POINTS: usize = 600;

/// How long open connections (event streams) may hold a stop of the server.
const LET_GO: Duration = Duration::from_millis(500);

/// The HTTP server, when `[gateway] http` is set.
#[derive(Debug, Default)]
pub(super) struct Serving {
    /// Where it listens.
    pub addr: Option<SocketAddr>,
    state: Option<Arc<HttpState>>,
    stop: CancellationToken,
    pub task: Tasks,
}

/// What the server shows besides the live store.
pub(super) struct Shown<'a> {
    pub status: &'a Arc<StatusBoard>,
    pub metrics: &'a Arc<Metrics>,
    pub kpi: Option<Arc<KpiBoard>>,
}

fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| {
            StartError::Http(format!(
                "cannot listen on {addr}: {e}; change [gateway] http"
            ))
        })
}

fn token(config: &Config) -> Result<Option<String>, StartError> {
    Ok(match &config.gateway.http_token_env {
        Some(env) => Some(env.resolve()?),
        None => None,
    })
}

impl Serving {
    /// Starts the server and its live store (a sink), when `[gateway] http` is set.
    pub fn start(
        ctx: &SinkContext<'_>,
        shown: Shown<'_>,
        sinks: &mut Sinks,
    ) -> Result<Serving, StartError> {
        let config = ctx.config;
        let Some(addr) = config.gateway.http else {
            return Ok(Serving::default());
        };
        let token = token(config)?;
        let listener = listen(addr)?;
        let store = Arc::new(RwLock::new(LiveStore::new(
            ctx.catalog,
            config.gateway.history,
            LIVE_POINTS,
        )));
        let (events, _) = broadcast::channel(256);
        let stats = Arc::new(SinkStats::default());
        let live = LiveSink {
            catalog: Arc::clone(ctx.shared),
            store: Arc::clone(&store),
            events: events.clone(),
            stats: Arc::clone(&stats),
            bound: crate::sink::bound(&config.buffer, None),
        };
        sinks.start(Box::new(live), stats);
        let state = Arc::new(HttpState {
            gateway: config.gateway.name.clone(),
            catalog: Arc::clone(ctx.shared),
            store,
            status: Arc::clone(shown.status),
            metrics: Arc::clone(shown.metrics),
            sinks: sinks.stats.clone(),
            events,
            token,
            started: std::time::Instant::now(),
            kpi: shown.kpi,
        });
        let mut serving = Serving::default();
        serving.serve(listener, state);
        Ok(serving)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener, state: Arc<HttpState>) {
        self.addr = listener.local_addr().ok();
        self.stop = CancellationToken::new();
        let served = crate::http::serve(listener, Arc::clone(&state), self.stop.clone());
        self.task.spawn("the HTTP server", served);
        self.state = Some(state);
        info!(address = ?self.addr, "HTTP API listening");
    }

    /// Listens on `config`'s `[gateway] http` (with its token) instead, keeping the store and
    /// the streams; the old address is let go once the new one is bound. A new address that
    /// cannot be bound changes nothing.
    pub async fn rebind(&mut self, config: &Config) -> Result<(), StartError> {
        let (Some(addr), Some(state)) = (config.gateway.http, &self.state) else {
            return Ok(());
        };
        let token = token(config)?;
        let same_place = self.addr.is_some_and(|a| a == addr && addr.port() != 0);
        let state = Arc::new(state.with_token(token));
        if same_place {
            // Only the token changed: the address stays, the server starts over on it.
            self.stop().await;
            self.serve(listen(addr)?, state);
            return Ok(());
        }
        let listener = listen(addr)?;
        self.stop().await;
        self.serve(listener, state);
        Ok(())
    }

    /// Keeps `config`'s `[gateway] history` in the live store from now on.
    pub fn keep_history(&self, config: &Config) {
        if let Some(state) = &self.state {
            let mut store = state
                .store
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            store.set_window(config.gateway.history);
        }
    }

    /// Stops the server; open event streams get [`LET_GO`] to end.
    pub async fn stop(&mut self) -> Vec<TaskPanic> {
        self.stop.cancel();
        match tokio::time::timeout(LET_GO, self.task.join_all()).await {
            Ok(p) => p,
            Err(_) => {
                warn!("HTTP connections still open at shutdown");
                self.task.abort_all();
                Vec::new()
            }
        }
    }
}
