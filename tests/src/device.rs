//! Modbus TCP devices for tests: a healthy one serving a register map through tokio-modbus's
//! server, and raw TCP servers that misbehave the ways real devices do.

use shopfloor_sim::server::{Registers, answer};
use std::future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};

/// The four data areas of a device: the simulator's register memory, with `put` for tests.
pub type Memory = Registers;

/// How a device answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves its memory.
    Healthy,
    /// Answers every request with an exception.
    Exception(ExceptionCode),
}

#[derive(Clone)]
struct Service {
    memory: Arc<Mutex<Memory>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl tokio_modbus::server::Service for Service {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Request<'static>) -> Self::Future {
        if let Behaviour::Exception(code) = *self.behaviour.lock().unwrap() {
            return future::ready(Err(code));
        }
        // The same answers as the simulated machines give; writes are refused there too.
        future::ready(answer(&self.memory.lock().unwrap(), req))
    }
}

/// A device serving until dropped.
#[derive(Debug)]
pub struct Device {
    pub addr: SocketAddr,
    pub memory: Arc<Mutex<Memory>>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

impl Device {
    /// A Modbus TCP server on a free port (or on `port`).
    pub async fn start(memory: Memory, behaviour: Behaviour, port: u16) -> Device {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let memory = Arc::new(Mutex::new(memory));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let service = Service {
            memory: Arc::clone(&memory),
            behaviour: Arc::clone(&behaviour),
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream, socket_addr| {
                counted.fetch_add(1, Ordering::SeqCst);
                let service = service.clone();
                async move { accept_tcp_connection(stream, socket_addr, |_| Ok(Some(service.clone()))) }
            };
            let _ = server.serve(&on_connected, |_err| {}).await;
        });
        Device {
            addr,
            memory,
            connections,
            behaviour,
            task,
        }
    }

    /// Changes how the device answers from the next request on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

/// The `[[machine.tag]]` entries of a [`moving`] device: one tag of each kind it serves.
pub const MOVING_TAGS: &str = r#"
  [[machine.tag]]
  name = "speed"
  area = "holding"
  address = 0
  type = "f32"
  unit = "rpm"

  [[machine.tag]]
  name = "count"
  area = "holding"
  address = 2
  type = "u16"

  [[machine.tag]]
  name = "temp"
  area = "holding"
  address = 3
  type = "i16"

  [[machine.tag]]
  name = "total"
  area = "holding"
  address = 4
  type = "u32"

  [[machine.tag]]
  name = "running"
  area = "coil"
  address = 0
  type = "bool"

  [[machine.tag]]
  name = "program"
  area = "holding"
  address = 10
  type = "string"
  length = 4
"#;

/// A device whose values move while the gateway reads them, with one tag of each kind:
/// holding 0 f32 (1000 + i/4), 2 u16 (a counter), 3 i16 (-40), 4 u32 (4,000,000,000),
/// 10 a string of 4 registers ("P-7"), coil 0 (false every seventh step); a step every 30 ms.
pub async fn moving() -> Device {
    use shopfloor_core::{Text, Value};
    use shopfloor_modbus::{Area, DataType, WordOrder};
    let mut m = Memory::default();
    m.put(
        Area::Holding,
        3,
        DataType::I16,
        WordOrder::ABCD,
        Value::I64(-40),
    );
    m.put(
        Area::Holding,
        4,
        DataType::U32,
        WordOrder::ABCD,
        Value::U64(4_000_000_000),
    );
    m.put(
        Area::Holding,
        10,
        DataType::String,
        WordOrder::ABCD,
        Value::Text(Text::from("P-7")),
    );
    let dev = Device::start(m, Behaviour::Healthy, 0).await;
    let memory = Arc::clone(&dev.memory);
    // Stops with the test's runtime.
    tokio::spawn(async move {
        for i in 0u64.. {
            {
                let mut m = memory.lock().unwrap();
                let speed = Value::F64(1000.0 + i as f64 * 0.25);
                m.put(Area::Holding, 0, DataType::F32, WordOrder::ABCD, speed);
                let count = Value::U64(i % 65536);
                m.put(Area::Holding, 2, DataType::U16, WordOrder::ABCD, count);
                m.put(
                    Area::Coil,
                    0,
                    DataType::Bool,
                    WordOrder::ABCD,
                    Value::Bool(i % 7 != 0),
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    });
    dev
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The machine of the fault tests: holding 0 `speed` (u16, `speed`) and 1 `temp` (f32, 21.5).
pub fn speed_and_temp(speed: u64) -> Memory {
    use shopfloor_core::Value;
    use shopfloor_modbus::{Area, DataType, WordOrder};
    let mut m = Memory::default();
    let (h, abcd) = (Area::Holding, WordOrder::ABCD);
    m.put(h, 0, DataType::U16, abcd, Value::U64(speed));
    m.put(h, 1, DataType::F32, abcd, Value::F64(21.5));
    m
}

/// The `[[machine]]` entry that reads [`speed_and_temp`] at `address`.
pub fn speed_and_temp_machine(id: &str, address: &str, poll_ms: u64, timeout_ms: u64) -> String {
    format!(
        r#"
[[machine]]
id = "{id}"
protocol = "modbus-tcp"
address = "{address}"
poll_interval = "{poll_ms}ms"
timeout = "{timeout_ms}ms"

  [[machine.tag]]
  name = "speed"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "temp"
  area = "holding"
  address = 1
  type = "f32"
"#
    )
}

/// Ways a raw TCP "device" misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts and reads, never answers.
    Hang,
    /// Answers every request with bytes that are not a Modbus reply.
    Garbage,
    /// Closes every connection as soon as it is accepted.
    Close,
    /// Answers with a well-formed reply for another transaction id.
    WrongTransaction,
    /// Answers correctly, one byte per second (a link or gateway that crawls).
    Trickle,
}

/// A misbehaving server until dropped.
#[derive(Debug)]
pub struct FaultyDevice {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FaultyDevice {
    pub async fn start(fault: Fault) -> FaultyDevice {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = listener.accept().await {
                match fault {
                    Fault::Close => drop(s),
                    Fault::Hang => held.push(s),
                    Fault::Trickle => {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 260];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n < 12 {
                                    break;
                                }
                                // A right reply to a register read: MBAP, function, byte count,
                                // zeros; sent a byte a second.
                                let count = u16::from_be_bytes([buf[10], buf[11]]).min(125);
                                let bytes = (count * 2) as u8;
                                let mut r = vec![buf[0], buf[1], 0, 0];
                                r.extend_from_slice(&(3 + u16::from(bytes)).to_be_bytes());
                                r.extend_from_slice(&[buf[6], buf[7], bytes]);
                                r.resize(r.len() + usize::from(bytes), 0);
                                for b in r {
                                    if s.write_all(&[b]).await.is_err() {
                                        return;
                                    }
                                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                                }
                            }
                        });
                    }
                    Fault::Garbage | Fault::WrongTransaction => {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 260];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n < 12 {
                                    break;
                                }
                                let reply: Vec<u8> = if fault == Fault::Garbage {
                                    b"HTTP/1.1 400 Bad Request\r\n\r\n\xff\xff\xff".to_vec()
                                } else {
                                    // MBAP with transaction id + 1, then a 1-register reply.
                                    let tid = u16::from_be_bytes([buf[0], buf[1]]).wrapping_add(1);
                                    let mut r = tid.to_be_bytes().to_vec();
                                    r.extend_from_slice(&[0, 0, 0, 5, buf[6], buf[7], 2, 0, 42]);
                                    r
                                };
                                if s.write_all(&reply).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                }
            }
        });
        FaultyDevice { addr, task }
    }
}

impl Drop for FaultyDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}
