//! The HTTP server: live API, Server-Sent Events and metrics. It only reads.
//!
//! Bound to loopback it is open; bound anywhere else every path but `/health` asks for the
//! bearer token held in the variable that `[gateway] http_token_env` names, either as
//! `Authorization: Bearer …` or, for browsers (an `EventSource` cannot send a header), as the
//! `access_token` query parameter of RFC 6750.

use crate::dashboard;
use crate::metrics::{self, Metrics};
use crate::sink::live::LiveStore;
use crate::status::StatusBoard;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shopfloor_core::{Quality, SharedCatalog, Value, time::now_ms};
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What the handlers read.
#[derive(Debug)]
pub struct HttpState {
    /// The gateway's name, shown by the dashboard.
    pub gateway: String,
    /// Machine and tag names (a recorder's grow while it runs).
    pub catalog: Arc<SharedCatalog>,
    /// Latest values and history.
    pub store: Arc<RwLock<LiveStore>>,
    /// Machine states.
    pub status: Arc<StatusBoard>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Sink counters.
    pub sinks: crate::sink::SinkBoard,
    /// Encoded batches for `/api/stream`.
    pub events: broadcast::Sender<Arc<str>>,
    /// The bearer token, when one is required.
    pub token: Option<String>,
    /// Start time, for `/health`.
    pub started: Instant,
    /// Each machine's latest KPIs, when any machine has `[machine.kpi]`.
    pub kpi: Option<Arc<crate::kpi::KpiBoard>>,
}

impl HttpState {
    /// The same state asking for `token` (a reload changed `[gateway] http_token_env`).
    pub fn with_token(&self, token: Option<String>) -> HttpState {
        HttpState {
            gateway: self.gateway.clone(),
            catalog: Arc::clone(&self.catalog),
            store: Arc::clone(&self.store),
            status: Arc::clone(&self.status),
            metrics: Arc::clone(&self.metrics),
            sinks: self.sinks.clone(),
            events: self.events.clone(),
            token,
            started: self.started,
            kpi: self.kpi.clone(),
        }
    }
}

type Shared = Arc<HttpState>;

/// Compares without an early exit, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && req.uri().path() != "/health"
    {
        let header_token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(std::borrow::Cow::Borrowed);
        let given = header_token.or_else(|| query_token(req.uri().query()));
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required: Authorization: Bearer <token>, \
                 or ?access_token=<token> in a browser\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The `access_token` query parameter, percent-decoded.
fn query_token(query: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

/// The routes, for serving and for tests.
pub fn router(state: Shared) -> Router {
    let mut app = Router::new();
    for path in dashboard::paths() {
        app = app.route(path, get(move || async move { dashboard::file(path) }));
    }
    app.route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/machines", get(machines))
        .route("/api/machines/{id}/history", get(history))
        .route("/api/machines/{id}/kpi", get(kpi))
        .route("/api/stream", get(stream))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, state: Shared, shutdown: CancellationToken) {
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "HTTP server stopped");
    }
}

async fn health(State(s): State<Shared>) -> Json<serde_json::Value> {
    let statuses = s.status.snapshot();
    let catalog = s.catalog.load();
    // The machines of the configuration (not those a reload removed).
    let current: Vec<_> = catalog
        .machines()
        .filter_map(|(id, _)| statuses.get(id.index()))
        .collect();
    let online = current
        .iter()
        .filter(|m| m.state == shopfloor_core::MachineState::Online)
        .count();
    let problems = crate::health::problems(&catalog, &statuses, &s.sinks.snapshot(), now_ms());
    Json(serde_json::json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "gateway": s.gateway,
        "machines": current.len(),
        "machines_online": online,
        "uptime_s": s.started.elapsed().as_secs(),
    }))
}

async fn metrics_text(State(s): State<Shared>) -> impl IntoResponse {
    let body = metrics::render(
        &s.catalog.load(),
        &s.metrics,
        &s.status.snapshot(),
        &s.sinks.snapshot(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::I64(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        // Non-finite floats have no JSON form; `Sample::new` never stores them anyway.
        Value::F64(x) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(t) => t.as_str().into(),
    }
}

async fn machines(State(s): State<Shared>) -> Response {
    let statuses = s.status.snapshot();
    let Ok(store) = s.store.read() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let catalog = s.catalog.load();
    let list: Vec<serde_json::Value> = catalog
        .machines()
        .map(|(id, m)| {
            let tags: Vec<serde_json::Value> = m
                .tags
                .iter()
                .enumerate()
                .map(|(t, info)| {
                    let latest = store.tag(id.index(), t).and_then(|l| l.latest.as_ref());
                    serde_json::json!({
                        "name": info.name,
                        "unit": info.unit,
                        "value": latest.map_or(serde_json::Value::Null, |p| json_value(&p.value)),
                        "quality": latest.map(|p| p.quality.as_str()),
                        "timestamp_ms": latest.map(|p| p.timestamp_ms),
                    })
                })
                .collect();
            let state = statuses.get(id.index());
            serde_json::json!({
                "id": m.id,
                "kind": m.kind,
                "protocol": m.protocol,
                "state": state.map(|st| st.state.as_str()),
                "error": state.and_then(|st| st.error.clone()),
                "last_seen_ms": store.last_seen(id.index()),
                "tags": tags,
            })
        })
        .collect();
    Json(list).into_response()
}

/// Query of the history endpoint.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    tag: Option<String>,
    seconds: Option<String>,
}

fn bad(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn history(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let catalog = s.catalog.load();
    let Some(machine) = catalog.find(&id) else {
        return bad(StatusCode::NOT_FOUND, format!("no machine {id:?}"));
    };
    let Some(tag_name) = q.tag else {
        return bad(StatusCode::BAD_REQUEST, "give ?tag=NAME".into());
    };
    let Some(tag) = catalog.find_tag(machine, &tag_name) else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("machine {id} has no tag {tag_name:?}"),
        );
    };
    let Ok(store) = s.store.read() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let window_s = store.window_ms() / 1000;
    let seconds = match q.seconds.as_deref().map(str::parse::<i64>) {
        None => window_s,
        Some(Ok(n)) if n > 0 => n.min(window_s),
        Some(_) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("seconds must be a whole number in 1..={window_s}"),
            );
        }
    };
    let since = now_ms() - seconds * 1000;
    let points: Vec<serde_json::Value> = store
        .tag(machine.index(), tag.index())
        .map(|t| {
            t.history
                .iter()
                .filter(|p| p.timestamp_ms >= since)
                .map(|p| {
                    serde_json::json!({
                        "timestamp_ms": p.timestamp_ms,
                        "value": if p.quality == Quality::Bad { serde_json::Value::Null } else { json_value(&p.value) },
                        "quality": p.quality.as_str(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Json(points).into_response()
}

/// A machine's KPI breakdown: 404 for a machine without `[machine.kpi]`, 503 until the
/// first interval has passed.
async fn kpi(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    match s.kpi.as_ref().and_then(|b| b.get(&id)) {
        None if s.catalog.load().find(&id).is_none() => {
            bad(StatusCode::NOT_FOUND, format!("no machine {id:?}"))
        }
        None => bad(
            StatusCode::NOT_FOUND,
            format!("machine {id} has no [machine.kpi]"),
        ),
        Some(None) => bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "no KPIs yet: the first are computed one [kpi] interval after start".into(),
        ),
        Some(Some(report)) => Json(report).into_response(),
    }
}

async fn stream(State(s): State<Shared>, _headers: HeaderMap) -> impl IntoResponse {
    let rx = s.events.subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(batch) => {
                    let event: Result<Event, Infallible> = Ok(Event::default().data(&*batch));
                    return Some((event, rx));
                }
                // A slow client skips what it missed; /api/machines resynchronises it.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
