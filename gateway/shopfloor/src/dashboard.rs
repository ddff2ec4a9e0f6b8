//! The dashboard page: the static files of `dashboards/web`, embedded at build time so the
//! binary serves them with nothing beside it (no CDN, no build step).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `(URL path, content type, content)` of every file the page needs.
const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../dashboards/web/index.html"),
    ),
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../../dashboards/web/dashboard.css"),
    ),
    (
        "/dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboards/web/dashboard.js"),
    ),
    (
        "/chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboards/web/chart.js"),
    ),
    (
        "/i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboards/web/i18n.js"),
    ),
    (
        "/kinds.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboards/web/kinds.js"),
    ),
];

/// The URL paths the page is served under.
pub fn paths() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(p, _, _)| *p)
}

/// The file at `path`, or 404.
pub fn file(path: &str) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        // Revalidated on every load: a gateway upgrade must never leave a stale page mixed
        // with a new API.
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
