//! A minimal HTTP/1.1 client over a plain socket, enough for the gateway's read-only API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response: status code and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn request(addr: SocketAddr, path: &str, token: Option<&str>) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n"
    )?;
    Ok(s)
}

/// `GET path`, with a bearer token if given.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let mut s = request(addr, path, token).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers: head.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until `GET /health` answers 200.
pub fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if request(addr, "/health", None)
            .ok()
            .and_then(|mut s| {
                let mut b = [0u8; 12];
                s.read_exact(&mut b).ok().map(|()| b)
            })
            .is_some_and(|b| b.ends_with(b"200"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The `data:` of the first Server-Sent Event on `path`.
pub fn first_event(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let s = request(addr, path, token).unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut header_done = false;
    while let Some(Ok(line)) = lines.next() {
        if !header_done {
            header_done = line.is_empty();
            continue;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            return data.to_owned();
        }
        // Chunk sizes and keep-alive comments are skipped.
        if let Some(pos) = line.find("data: ") {
            return line[pos + 6..].to_owned();
        }
    }
    panic!("no event on {path}");
}
