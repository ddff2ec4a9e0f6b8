//! A minimal HTTP/1.1 client over a plain socket, enough for the gateway's read-only API and
//! for driving a browser through WebDriver.

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
    send(addr, "GET", path, token, None, Duration::from_secs(5))
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(timeout))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let content = body
        .map(|b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}{content}\r\n{}",
        body.unwrap_or("")
    )?;
    Ok(s)
}

/// `GET path`, with a bearer token if given.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    read_reply(request(addr, path, token).unwrap()).unwrap()
}

/// `method path` with a JSON body, waiting up to `timeout` for the answer.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    read_reply(send(addr, method, path, None, body, timeout)?)
}

fn read_reply(s: TcpStream) -> std::io::Result<Reply> {
    // Some servers (chromedriver) keep the connection open despite `Connection: close`, so
    // the body ends where Content-Length or the last chunk says, not at end of stream.
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    if let Some(n) = length {
        raw.resize(n, 0);
        r.read_exact(&mut raw)?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            raw.extend_from_slice(line.as_bytes());
            if line == "0\r\n" || line.is_empty() {
                break;
            }
        }
    } else {
        r.read_to_end(&mut raw)?;
    }
    let body = String::from_utf8_lossy(&raw).into_owned();
    let body = if length.is_none() && lower.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    Ok(Reply {
        status,
        headers: head,
        body,
    })
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

/// The value of the Prometheus sample `name` (with its labels, as written) in a `/metrics` body.
pub fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .parse()
        .unwrap()
}
