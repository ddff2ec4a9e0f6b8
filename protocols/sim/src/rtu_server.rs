//! Serves simulated machines over Modbus RTU: several units on one line, each answering under
//! its own unit id, as meters on one RS-485 bus do. The line is a TCP connection (RTU over TCP,
//! as a serial device server passes it on) or a serial device (e.g. one end of a `socat`
//! pseudo-terminal pair).
//!
//! A request for a unit that is not on the line, or for one that is switched off, gets no
//! answer: on a bus silence is all a dead unit can say.

use crate::Faults;
use crate::model::Model;
use crate::profile::profile;
use crate::server::{Registers, SimMachine, answer, tick_in_real_time};
use shopfloor_modbus::link::SerialLine;
use shopfloor_modbus::rtu::{self, REQUEST_LEN};
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_modbus::{Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// A simulated machine and the unit id it answers on.
#[derive(Debug, Clone)]
pub struct SimUnit {
    /// Its unit id on the line.
    pub unit: u8,
    /// What it simulates.
    pub machine: SimMachine,
}

/// One unit's live register memory.
#[derive(Debug)]
struct Unit {
    unit: u8,
    memory: Arc<RwLock<Registers>>,
    faults: Faults,
}

/// The units of one line, their models ticking.
#[derive(Debug, Clone)]
struct Line {
    units: Arc<Vec<Unit>>,
    started: Instant,
}

impl Line {
    /// Starts every unit's model on `tasks`.
    fn start(units: Vec<SimUnit>, tasks: &mut JoinSet<()>) -> Line {
        let mut out = Vec::with_capacity(units.len());
        for u in units {
            let tags = profile(u.machine.kind);
            let model: Box<dyn Model> = u.machine.kind.build(u.machine.seed);
            let memory = Arc::new(RwLock::new(Registers::default()));
            if let Ok(mut m) = memory.write() {
                m.write(&tags, &model.values());
            }
            let ticker_memory = Arc::clone(&memory);
            tasks.spawn(tick_in_real_time(model, u.machine.speedup, move |values| {
                if let Ok(mut m) = ticker_memory.write() {
                    m.write(&tags, &values);
                }
            }));
            out.push(Unit {
                unit: u.unit,
                memory,
                faults: u.machine.faults,
            });
        }
        Line {
            units: Arc::new(out),
            started: Instant::now(),
        }
    }

    /// The reply frame to `frame`, if one of the line's units answers it.
    fn reply(&self, frame: &[u8]) -> Option<(Vec<u8>, Option<std::time::Duration>)> {
        let call = rtu::parse_request(frame)?;
        let unit = self.units.iter().find(|u| u.unit == call.unit)?;
        if unit.faults.offline_at(self.started.elapsed()) {
            return None;
        }
        let slow = unit.faults.slow;
        if let Some(code) = unit.faults.exception {
            return Some((rtu::exception_reply(call.unit, call.function, code), slow));
        }
        let request = match rtu::area_of(call.function) {
            Some(shopfloor_modbus::Area::Holding) => {
                Request::ReadHoldingRegisters(call.start, call.count)
            }
            Some(shopfloor_modbus::Area::Input) => {
                Request::ReadInputRegisters(call.start, call.count)
            }
            Some(shopfloor_modbus::Area::Coil) => Request::ReadCoils(call.start, call.count),
            Some(shopfloor_modbus::Area::Discrete) => {
                Request::ReadDiscreteInputs(call.start, call.count)
            }
            None => return Some((rtu::exception_reply(call.unit, call.function, 1), slow)),
        };
        let answered = match unit.memory.read() {
            Ok(m) => answer(&m, request),
            Err(_) => Err(tokio_modbus::ExceptionCode::ServerDeviceFailure),
        };
        let frame = match answered {
            Ok(Response::ReadHoldingRegisters(r) | Response::ReadInputRegisters(r)) => {
                rtu::data_reply(call.unit, call.function, &rtu::pack_registers(&r))
            }
            Ok(Response::ReadCoils(b) | Response::ReadDiscreteInputs(b)) => {
                rtu::data_reply(call.unit, call.function, &rtu::pack_bits(&b))
            }
            Ok(_) => rtu::exception_reply(call.unit, call.function, 1),
            Err(code) => rtu::exception_reply(call.unit, call.function, code.into()),
        };
        Some((frame, slow))
    }

    /// Answers requests on `wire` until it closes. Requests are found by their CRC: a byte
    /// that does not start a good frame is skipped, as a slave resynchronises on a noisy line.
    async fn answer_on(&self, mut wire: impl AsyncRead + AsyncWrite + Unpin) {
        let mut buf: Vec<u8> = Vec::with_capacity(64);
        let mut chunk = [0u8; 256];
        loop {
            match wire.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= REQUEST_LEN {
                if rtu::parse_request(&buf[..REQUEST_LEN]).is_none() {
                    buf.remove(0);
                    continue;
                }
                let frame: Vec<u8> = buf.drain(..REQUEST_LEN).collect();
                let Some((reply, slow)) = self.reply(&frame) else {
                    continue;
                };
                if let Some(delay) = slow {
                    tokio::time::sleep(delay).await;
                }
                if wire.write_all(&reply).await.is_err() || wire.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Serves `units` as RTU over TCP on `listener`, each connection a line of its own, until
/// `shutdown` is cancelled.
pub async fn serve_rtu_tcp(
    listener: TcpListener,
    units: Vec<SimUnit>,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    let line = Line::start(units, &mut tasks);
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let line = line.clone();
                    tasks.spawn(async move { line.answer_on(stream).await });
                }
                Err(e) => {
                    warn!(error = %e, "simulated RTU line stopped accepting");
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = accept => {}
    }
}

/// Serves `units` on the serial device of `line` until `shutdown` is cancelled.
pub async fn serve_rtu_serial(
    line: SerialLine,
    units: Vec<SimUnit>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let opened = shopfloor_modbus::serial::open(&line)?;
    let mut tasks = JoinSet::new();
    let served = Line::start(units, &mut tasks);
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = served.answer_on(opened.stream) => {}
    }
    Ok(())
}
