//! One connection to the broker: TCP or TLS, CONNECT and CONNACK, then whole buffers written
//! at once and packets read as they come.

use crate::wire::{self, Incoming, WireError};
use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Packets from the broker larger than this end the connection (the sink reads only acks).
const MAX_INCOMING: usize = 64 * 1024;

/// Why there is no connection.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// TCP connect, read or write failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The step did not finish in time.
    #[error("no answer from the broker within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    /// The host is no valid TLS server name.
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    /// The broker answered CONNECT with a refusal.
    #[error("broker refused the connection ({}): check username, password_env and the certificates", wire::connack_reason(*.0))]
    Refused(u8),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// The broker sent something that is not MQTT 3.1.1 as the sink reads it.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The broker's first packet was not CONNACK.
    #[error("the broker answered CONNECT with packet type {0}, not CONNACK")]
    NotConnAck(u8),
}

/// Where and how to connect.
#[derive(Debug)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS client configuration for `mqtts://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The CONNECT packet, encoded once.
    pub connect: Vec<u8>,
    /// Limit for connecting (TCP, TLS, CONNECT to CONNACK) and for each write.
    pub timeout: Duration,
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An accepted MQTT connection.
pub struct Connection {
    stream: Stream,
    /// Bytes read; those before `start` are framed and taken already.
    incoming: Vec<u8>,
    start: usize,
    timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects, sends CONNECT and waits for an accepting CONNACK.
    pub async fn open(target: Arc<Target>) -> Result<Connection, ConnectionError> {
        let limit = target.timeout;
        tokio::time::timeout(limit, Self::handshake(&target))
            .await
            .map_err(|_| ConnectionError::Timeout(limit, "connecting"))?
    }

    async fn handshake(target: &Target) -> Result<Connection, ConnectionError> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        // Batches are written whole; Nagle would only hold back the last part of one.
        tcp.set_nodelay(true)?;
        let stream = match &target.tls {
            None => Stream::Tcp(tcp),
            Some(config) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|_| ConnectionError::ServerName(target.host.clone()))?;
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Connection {
            stream,
            incoming: Vec::with_capacity(4096),
            start: 0,
            timeout: target.timeout,
        };
        conn.stream.write_all(&target.connect).await?;
        conn.stream.flush().await?;
        match conn.read().await? {
            Incoming::ConnAck { code: 0, .. } => Ok(conn),
            Incoming::ConnAck { code, .. } => Err(ConnectionError::Refused(code)),
            other => Err(ConnectionError::NotConnAck(match other {
                Incoming::PubAck(_) => 4,
                Incoming::PingResp => 13,
                Incoming::Other(t) => t,
                Incoming::ConnAck { .. } => 2,
            })),
        }
    }

    /// Writes `buf` whole, within the timeout.
    pub async fn write(&mut self, buf: &[u8]) -> Result<(), ConnectionError> {
        let limit = self.timeout;
        let stream = &mut self.stream;
        tokio::time::timeout(limit, async move {
            stream.write_all(buf).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| ConnectionError::Timeout(limit, "writing"))??;
        Ok(())
    }

    /// The next packet from the broker. Cancel-safe: a packet is taken from the buffer only
    /// once it is whole, and bytes read are kept in `self` across cancellations.
    pub async fn read(&mut self) -> Result<Incoming, ConnectionError> {
        loop {
            if let Some(packet) = self.buffered()? {
                return Ok(packet);
            }
            // Move the unframed rest to the front before reading more; a read carrying many
            // acks is framed without moving bytes per packet.
            self.incoming.drain(..self.start);
            self.start = 0;
            if self.stream.read_buf(&mut self.incoming).await? == 0 {
                return Err(ConnectionError::Closed);
            }
        }
    }

    /// The next packet already read, if one is whole.
    pub fn buffered(&mut self) -> Result<Option<Incoming>, ConnectionError> {
        let rest = self.incoming.get(self.start..).unwrap_or_default();
        let Some((packet, used)) = wire::decode(rest, MAX_INCOMING)? else {
            return Ok(None);
        };
        self.start += used;
        if self.start == self.incoming.len() {
            self.incoming.clear();
            self.start = 0;
        }
        Ok(Some(packet))
    }

    /// Ends the connection: the TLS close notification, then the TCP FIN.
    pub async fn shutdown(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
    }
}
