//! One RTU bus connection (a serial line, or RTU frames over TCP): one request on the wire at a
//! time, each after the line has been silent for 3.5 characters, with whatever was left on the
//! line discarded first, and its reply read exactly to the length its header gives.

use crate::driver::{ReadError, Reply};
use crate::plan::ReadRequest;
use crate::rtu::{self, Answer, LineTiming, MAX_FRAME};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_modbus::ExceptionCode;

/// A byte stream an RTU bus runs on.
pub trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// The silence kept between frames over TCP, where the device server times the serial side:
/// none is needed on this side, but a reply's stray tail must still be drained.
const TCP_SILENCE: Duration = Duration::from_micros(200);

/// The last stretch of a silence waited by yielding rather than by the millisecond timer.
const FINE_WAIT: Duration = Duration::from_millis(1);

/// An open RTU bus.
pub struct RtuLine {
    wire: Box<dyn Wire>,
    /// The serial line's timing; `None` over TCP.
    timing: Option<LineTiming>,
    /// When a byte was last sent or received.
    last_activity: Instant,
    /// Bytes discarded before requests since the line was opened (noise, late replies).
    pub discarded: u64,
}

impl std::fmt::Debug for RtuLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtuLine")
            .field("timing", &self.timing)
            .field("discarded", &self.discarded)
            .finish_non_exhaustive()
    }
}

impl RtuLine {
    /// A bus on `wire`, timed as `timing` says (`None`: RTU over TCP).
    pub fn new(wire: Box<dyn Wire>, timing: Option<LineTiming>) -> RtuLine {
        RtuLine {
            wire,
            timing,
            last_activity: Instant::now(),
            discarded: 0,
        }
    }

    fn silence(&self) -> Duration {
        self.timing.map_or(TCP_SILENCE, |t| t.silence())
    }

    /// Waits until the line has been silent for the inter-frame interval, discarding whatever
    /// arrives meanwhile (a late reply, noise).
    async fn settle(&mut self, r: &ReadRequest) -> Result<(), ReadError> {
        let what = || crate::driver::describe(r);
        let mut scratch = [0u8; MAX_FRAME];
        let mut quiet_until = self.last_activity + self.silence();
        loop {
            // tokio's timer counts whole milliseconds, too coarse for a silence of 1.75 ms: the
            // timer takes the wait up to the last millisecond, and the rest is yielded away,
            // looking at the line each time. A zero wait still polls the read once, so bytes
            // already buffered are found.
            let now = Instant::now();
            let coarse = quiet_until
                .checked_sub(FINE_WAIT)
                .filter(|c| *c > now)
                .unwrap_or(now);
            match timeout_at(coarse, self.wire.read(&mut scratch)).await {
                Err(_) if Instant::now() >= quiet_until => return Ok(()),
                Err(_) => tokio::task::yield_now().await,
                Ok(Ok(0)) => return Err(closed(what())),
                Ok(Ok(n)) => {
                    self.discarded += n as u64;
                    self.last_activity = Instant::now();
                    quiet_until = self.last_activity + self.silence();
                }
                Ok(Err(e)) => return Err(transport(what(), &e)),
            }
        }
    }

    /// Reads `r` from `unit`; `limit` counts from the end of the request frame on the wire.
    pub async fn read(
        &mut self,
        unit: u8,
        r: &ReadRequest,
        limit: Duration,
    ) -> Result<Reply, ReadError> {
        let what = || crate::driver::describe(r);
        self.settle(r).await?;
        let frame = rtu::request(unit, r);
        let sent = async {
            self.wire.write_all(&frame).await?;
            self.wire.flush().await
        };
        match timeout(limit, sent).await {
            Err(_) => {
                return Err(ReadError::Timeout {
                    what: what(),
                    limit,
                });
            }
            Ok(Err(e)) => return Err(transport(what(), &e)),
            Ok(Ok(())) => {}
        }
        // The kernel has the frame, not the wire: its own wire time comes on top of the limit.
        let on_wire = self.timing.map_or(Duration::ZERO, |t| t.chars(frame.len()));
        let deadline = Instant::now() + on_wire + limit;
        let reply = self.receive(deadline, limit, r).await;
        self.last_activity = Instant::now();
        let reply = reply?;
        match rtu::parse_reply(unit, r.area, r.count, &reply) {
            Ok(Answer::Data(data)) if r.area.is_bits() => Ok(Reply::Bits(rtu::bits(&data))),
            Ok(Answer::Data(data)) => Ok(Reply::Registers(rtu::registers(&data))),
            Ok(Answer::Exception(code)) => Err(ReadError::Exception {
                what: what(),
                code: ExceptionCode::new(code),
            }),
            Err(e) => Err(ReadError::Frame {
                what: what(),
                message: e.to_string(),
            }),
        }
    }

    /// Reads one frame: until its header's length is reached, or `deadline`. Bytes after the
    /// frame are left to the next [`RtuLine::settle`]'s count.
    async fn receive(
        &mut self,
        deadline: Instant,
        limit: Duration,
        r: &ReadRequest,
    ) -> Result<Vec<u8>, ReadError> {
        let what = || crate::driver::describe(r);
        let mut buf = vec![0u8; MAX_FRAME + 8];
        let mut got = 0;
        loop {
            let need = rtu::frame_len(&buf[..got]).unwrap_or(3);
            if got >= need {
                self.discarded += (got - need) as u64;
                buf.truncate(need);
                return Ok(buf);
            }
            let room = buf.len();
            match timeout_at(deadline, self.wire.read(&mut buf[got..room])).await {
                Err(_) if got == 0 => {
                    return Err(ReadError::Timeout {
                        what: what(),
                        limit,
                    });
                }
                Err(_) => {
                    return Err(ReadError::Frame {
                        what: what(),
                        message: format!("reply cut short ({got} bytes, expected {need})"),
                    });
                }
                Ok(Ok(0)) => return Err(closed(what())),
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => return Err(transport(what(), &e)),
            }
        }
    }
}

fn closed(what: String) -> ReadError {
    ReadError::Transport {
        what,
        message: "the line was closed".into(),
    }
}

fn transport(what: String, e: &std::io::Error) -> ReadError {
    ReadError::Transport {
        what,
        message: e.to_string(),
    }
}
