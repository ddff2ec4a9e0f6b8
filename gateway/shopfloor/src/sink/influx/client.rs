//! One write request to the InfluxDB v2 write API, and what its answer means for the batch.
//!
//! Written over reqwest rather than with the influxdb2 crate: that crate builds every point
//! from owned strings in a map and has no unsigned field type, and it sits on an older HTTP
//! stack than the rest of the gateway. `cargo bench --bench line_protocol` measures the
//! encoder beside it.

use crate::config::InfluxConfig;
use bytes::Bytes;
use reqwest::StatusCode;
use std::fmt;
use std::sync::Arc;

/// A secret that never shows in `Debug` or `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token read from the environment.
    pub fn new(token: String) -> Token {
        Token(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// What became of a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the store has the points.
    Written,
    /// 400, 413 or 422: the store will never take this batch (bad data, too large); the
    /// reason is its own message.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The store's message.
        reason: String,
    },
    /// 401, 403 or 404: the store refuses our token or does not know the bucket. The batch is
    /// fine and waits until someone fixes the token or makes the bucket.
    Refused {
        /// HTTP status.
        status: u16,
        /// The store's message.
        reason: String,
    },
    /// Worth another try later: 5xx, 408, 429 and any other answer, a timeout, a refused or
    /// broken connection.
    Retry(String),
}

/// Failure to set up the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS settings.
    #[error("TLS for the store: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Sends gzip-compressed line protocol to one bucket.
#[derive(Debug, Clone)]
pub struct WriteClient {
    http: reqwest::Client,
    url: String,
    token: Option<Token>,
}

/// The TLS settings: the system's roots for `https://`; none needed for `http://`, but reqwest
/// wants a configuration either way (the gateway installs no process-wide crypto provider).
fn tls(system_roots: bool) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if system_roots {
        for c in rustls_native_certs::load_native_certs().certs {
            // A system store may hold a certificate rustls cannot parse; skip it.
            let _ = roots.add(c);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl WriteClient {
    /// A client for `cfg`'s store, with `token` when it needs one.
    pub fn new(cfg: &InfluxConfig, token: Option<Token>) -> Result<WriteClient, ClientError> {
        let builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("shopfloor/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls(cfg.url.scheme == "https")?);
        let base = cfg.url.to_string();
        let base = base.trim_end_matches('/');
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("org", &cfg.org)
            .append_pair("bucket", &cfg.bucket)
            .append_pair("precision", "ms")
            .finish();
        Ok(WriteClient {
            http: builder.build()?,
            url: format!("{base}/api/v2/write?{query}"),
            token,
        })
    }

    /// The write URL (no secret in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `gzipped` line protocol.
    pub async fn write(&self, gzipped: Bytes) -> Outcome {
        let mut req = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(gzipped);
        if let Some(Token(t)) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Token {t}"));
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Outcome::Written;
                }
                let body = resp.text().await.unwrap_or_default();
                classify(status, &body)
            }
            // reqwest's errors name the URL (org and bucket), never the headers.
            Err(e) => Outcome::Retry(describe(&e)),
        }
    }
}

/// What a non-2xx answer means.
pub fn classify(status: StatusCode, body: &str) -> Outcome {
    let reason = reason(body);
    let code = status.as_u16();
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNPROCESSABLE_ENTITY => Outcome::Rejected {
            status: code,
            reason,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
            Outcome::Refused {
                status: code,
                reason,
            }
        }
        _ => Outcome::Retry(format!("HTTP {code}: {reason}")),
    }
}

/// The store's own message: InfluxDB answers `{"code":…,"message":…}`, VictoriaMetrics plain
/// text. Cut short, on one line.
fn reason(body: &str) -> String {
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    let one_line: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if one_line.is_empty() {
        "(no reason given)".into()
    } else {
        one_line
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        for (code, body, want) in [
            (
                400,
                r#"{"code":"invalid","message":"unable to parse 'x y'"}"#,
                Some("unable to parse 'x y'"),
            ),
            (413, "too large", Some("too large")),
            (422, "field type conflict", Some("field type conflict")),
            (429, "slow down", None),
            (409, "", None),
            (408, "", None),
            (500, "oops", None),
            (503, "", None),
        ] {
            let out = classify(StatusCode::from_u16(code).unwrap(), body);
            match want {
                Some(reason) => assert_eq!(
                    out,
                    Outcome::Rejected {
                        status: code,
                        reason: reason.into()
                    },
                    "{code}"
                ),
                None => assert!(matches!(out, Outcome::Retry(_)), "{code}: {out:?}"),
            }
        }
        for (code, body, reason) in [
            (401, "", "(no reason given)"),
            (403, "token expired", "token expired"),
            (404, "bucket \"x\" not found\n", "bucket \"x\" not found"),
        ] {
            let out = classify(StatusCode::from_u16(code).unwrap(), body);
            let want = Outcome::Refused {
                status: code,
                reason: reason.into(),
            };
            assert_eq!(out, want, "{code}");
        }
    }

    #[test]
    fn the_token_never_prints() {
        let t = Token::new("s3cr3t".into());
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
