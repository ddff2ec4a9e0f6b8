//! A private VictoriaMetrics on a free port, its data in a temporary directory; it can be
//! stopped and started again on the same port and data, as a store that goes away and comes back.

use crate::http::{call, get};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running VictoriaMetrics; killed on drop.
#[derive(Debug)]
pub struct Victoria {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
    dedup: bool,
}

/// One exported series: its labels, and its points as (timestamp ms, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

fn binary() -> PathBuf {
    for p in [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("victoria-metrics is not installed: run the README's test command, which installs it");
}

impl Victoria {
    /// Starts a store on a free port and waits until it answers.
    pub fn start() -> Victoria {
        Self::start_with(false)
    }

    /// A store that keeps one point per series and millisecond: a batch written twice (sent
    /// again after an answer was lost) is counted once.
    pub fn start_deduplicating() -> Victoria {
        Self::start_with(true)
    }

    fn start_with(dedup: bool) -> Victoria {
        let port = crate::free_port();
        let mut v = Victoria {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            dedup,
        };
        v.spawn();
        v
    }

    /// `http://127.0.0.1:PORT`, for `[influx] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("victoria.log"))
            .unwrap();
        let mut cmd = Command::new(binary());
        if self.dedup {
            cmd.arg("-dedup.minScrapeInterval=1ms");
        }
        let child = cmd
            .arg(format!(
                "-storageDataPath={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr={}", self.addr))
            .arg("-retentionPeriod=100y")
            // Queries see points as soon as they are written, not 30 s later.
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start victoria-metrics");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !call(self.addr, "GET", "/health", None, Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200)
        {
            assert!(
                Instant::now() < deadline,
                "victoria-metrics did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("victoria.log")).unwrap_or_default()
    }

    /// Stops it as an operator would (SIGTERM: it flushes what it acknowledged, then exits),
    /// keeping its data. Killed outright it would lose its last second of acknowledged points,
    /// which says nothing about the gateway.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Every series whose name matches the regular expression `name`, with all its points.
    pub fn export(&self, name: &str) -> Vec<Series> {
        // Freshly written points are searchable once flushed from the in-memory buffers.
        let _ = get(self.addr, "/internal/force_flush", None);
        let query = format!("/api/v1/export?match[]=%7B__name__=~%22{name}%22%7D");
        let reply = get(self.addr, &query, None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut out: Vec<Series> = reply
            .body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                let labels = j["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let values = j["values"].as_array().unwrap();
                let stamps = j["timestamps"].as_array().unwrap();
                let mut points: Vec<(i64, f64)> = stamps
                    .iter()
                    .zip(values)
                    .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                points.sort_by_key(|p| p.0);
                Series { labels, points }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

impl Victoria {
    /// The value of an instant query that returns one series (NaN when it returns none).
    pub fn query_value(&self, expr: &str) -> f64 {
        self.query(expr)[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// The number of series a PromQL/MetricsQL instant query returns.
    pub fn query_series(&self, expr: &str) -> usize {
        self.query(expr).as_array().map_or(0, Vec::len)
    }

    /// The `result` of an instant query, after flushing what was written.
    fn query(&self, expr: &str) -> serde_json::Value {
        let _ = get(self.addr, "/internal/force_flush", None);
        let reply = get(
            self.addr,
            &format!("/api/v1/query?query={}", encode(expr)),
            None,
        );
        assert_eq!(reply.status, 200, "{expr}: {}", reply.body);
        reply.json()["data"]["result"].take()
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `expr` percent-encoded for a query string.
fn encode(expr: &str) -> String {
    expr.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
