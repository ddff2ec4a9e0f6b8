//! Serves a simulated machine over Modbus TCP: a task steps the model in real time (times the
//! speed-up) and writes its values into register memory; a tokio-modbus service answers reads
//! from that memory. Writes are refused: like the gateway, the hall is read-only.

use crate::faults::Faults;
use crate::model::{Model, SimKind};
use crate::profile::{ProfileTag, profile, raw_value};
use shopfloor_core::Value;
use shopfloor_modbus::encode::encode_registers;
use shopfloor_modbus::{Area, DataType};
use shopfloor_modbus::{TagSpec, WordOrder};
use std::future::{self, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the model is stepped and its registers refreshed.
pub const TICK: Duration = Duration::from_millis(50);

/// The four data areas of a simulated device.
#[derive(Debug, Clone)]
pub struct Registers {
    /// Holding registers.
    pub holding: Vec<u16>,
    /// Input registers.
    pub input: Vec<u16>,
    /// Coils.
    pub coils: Vec<bool>,
    /// Discrete inputs.
    pub discrete: Vec<bool>,
}

impl Default for Registers {
    fn default() -> Registers {
        Registers {
            holding: vec![0; 65536],
            input: vec![0; 65536],
            coils: vec![false; 65536],
            discrete: vec![false; 65536],
        }
    }
}

impl Registers {
    /// Writes one raw `value` as a tag of `data_type` and `order` at `area`/`address` (for
    /// test devices; strings take as many registers as they need).
    pub fn put(
        &mut self,
        area: Area,
        address: u16,
        data_type: DataType,
        order: WordOrder,
        value: Value,
    ) {
        let mut spec = TagSpec::new(area, address, data_type);
        spec.order = order;
        if let Value::Text(t) = &value {
            spec.length = t.len().div_ceil(2).max(1) as u16;
        }
        let tag = ProfileTag {
            name: "put",
            spec,
            unit: None,
            note: None,
            deadband: None,
        };
        self.write(std::slice::from_ref(&tag), &[value]);
    }

    /// Writes `values` (in profile order) at their profile places.
    pub fn write(&mut self, tags: &[ProfileTag], values: &[Value]) {
        for (t, v) in tags.iter().zip(values) {
            let s = &t.spec;
            let a = usize::from(s.address);
            match s.area {
                Area::Coil => self.coils[a] = matches!(v, Value::Bool(true)),
                Area::Discrete => self.discrete[a] = matches!(v, Value::Bool(true)),
                Area::Holding | Area::Input => {
                    let regs = match encode_registers(s, &raw_value(s, v)) {
                        Ok(r) => r,
                        Err(e) => {
                            warn!(tag = t.name, error = %e, "simulated value not encodable");
                            continue;
                        }
                    };
                    let area = if s.area == Area::Holding {
                        &mut self.holding
                    } else {
                        &mut self.input
                    };
                    match (s.data_type, s.bit) {
                        // A bit shares its register with others: change only that bit.
                        (DataType::Bool, Some(bit)) => {
                            let mask = 1u16 << bit;
                            area[a] = (area[a] & !mask) | (regs[0] & mask);
                        }
                        _ => area[a..a + regs.len()].copy_from_slice(&regs),
                    }
                }
            }
        }
    }
}

/// The per-connection service: reads from memory, and shows the machine's faults.
#[derive(Clone)]
struct ReadOnly {
    memory: Arc<RwLock<Registers>>,
    faults: Arc<Faults>,
    started: Instant,
    /// Requests answered on this connection, and the flag that closes it.
    served: Arc<AtomicU32>,
    close: Arc<AtomicBool>,
}

fn slice<T: Clone>(v: &[T], addr: u16, cnt: u16) -> Result<Vec<T>, ExceptionCode> {
    let a = usize::from(addr);
    v.get(a..a + usize::from(cnt))
        .map(<[T]>::to_vec)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

/// The answer of a read-only device with memory `m` to `req`: the data, or the exception a
/// device gives for an address it does not have or a function it does not serve (writes).
pub fn answer(m: &Registers, req: Request<'_>) -> Result<Response, ExceptionCode> {
    match req {
        Request::ReadHoldingRegisters(a, c) => {
            slice(&m.holding, a, c).map(Response::ReadHoldingRegisters)
        }
        Request::ReadInputRegisters(a, c) => {
            slice(&m.input, a, c).map(Response::ReadInputRegisters)
        }
        Request::ReadCoils(a, c) => slice(&m.coils, a, c).map(Response::ReadCoils),
        Request::ReadDiscreteInputs(a, c) => {
            slice(&m.discrete, a, c).map(Response::ReadDiscreteInputs)
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

impl ReadOnly {
    fn answer(&self, req: Request<'static>) -> Result<Response, ExceptionCode> {
        if let Some(code) = self.faults.exception {
            return Err(ExceptionCode::new(code));
        }
        let Ok(m) = self.memory.read() else {
            return Err(ExceptionCode::ServerDeviceFailure);
        };
        answer(&m, req)
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for ReadOnly {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Request<'static>) -> Answer {
        if self.faults.offline_at(self.started.elapsed()) {
            // Switched off: the request goes unanswered.
            return Box::pin(future::pending());
        }
        let n = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        if self.faults.drop_every.is_some_and(|every| n >= every) {
            self.close.store(true, Ordering::SeqCst);
        }
        let result = self.answer(req);
        match self.faults.slow {
            Some(delay) => Box::pin(async move {
                tokio::time::sleep(delay).await;
                result
            }),
            None => Box::pin(future::ready(result)),
        }
    }
}

/// A connection that ends (reads EOF) once its service raised `close`: how the simulator drops
/// connections, since a tokio-modbus service cannot close its own.
struct Closable {
    inner: TcpStream,
    close: Arc<AtomicBool>,
}

impl AsyncRead for Closable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.close.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Closable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One simulated machine to serve.
#[derive(Debug, Clone)]
pub struct SimMachine {
    /// What it is.
    pub kind: SimKind,
    /// Its seed: the same seed, the same machine.
    pub seed: u64,
    /// Machine seconds per real second.
    pub speedup: f64,
    /// What goes wrong on purpose.
    pub faults: Faults,
}

/// Steps `model` every [`TICK`] by the real time passed times `speedup` and hands each new set
/// of values to `publish`; runs until dropped.
pub async fn tick_in_real_time(
    mut model: Box<dyn Model>,
    speedup: f64,
    mut publish: impl FnMut(Vec<Value>),
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        model.step((now - last).as_secs_f64() * speedup);
        last = now;
        publish(model.values());
    }
}

/// Serves `machine` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, machine: SimMachine, shutdown: CancellationToken) {
    let tags = profile(machine.kind);
    let model: Box<dyn Model> = machine.kind.build(machine.seed);
    let memory = Arc::new(RwLock::new(Registers::default()));
    if let Ok(mut m) = memory.write() {
        m.write(&tags, &model.values());
    }
    let ticker_memory = Arc::clone(&memory);
    let ticker = tick_in_real_time(model, machine.speedup, move |values| {
        if let Ok(mut m) = ticker_memory.write() {
            m.write(&tags, &values);
        }
    });
    let faults = Arc::new(machine.faults.clone());
    let started = Instant::now();
    let server = async move {
        let server = Server::new(listener);
        let on_connected = |stream: TcpStream, _addr| {
            let faults = Arc::clone(&faults);
            let memory = Arc::clone(&memory);
            async move {
                if faults.offline_at(started.elapsed()) {
                    return Ok(None); // switched off: the connection is closed at once
                }
                let close = Arc::new(AtomicBool::new(false));
                let service = ReadOnly {
                    memory,
                    faults,
                    started,
                    served: Arc::new(AtomicU32::new(0)),
                    close: Arc::clone(&close),
                };
                Ok(Some((
                    service,
                    Closable {
                        inner: stream,
                        close,
                    },
                )))
            }
        };
        if let Err(e) = server.serve(&on_connected, |_| {}).await {
            warn!(error = %e, "simulated machine stopped serving");
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = ticker => {}
        _ = server => {}
    }
}
