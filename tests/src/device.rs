//! Modbus TCP devices for tests: a healthy one serving a register map through tokio-modbus's
//! server, and raw TCP servers that misbehave the ways real devices do.

use shopfloor_core::Value;
use shopfloor_modbus::encode::encode_registers;
use shopfloor_modbus::{Area, DataType, TagSpec, WordOrder};
use std::future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};

/// The four data areas of a device.
#[derive(Debug, Clone)]
pub struct Memory {
    pub holding: Vec<u16>,
    pub input: Vec<u16>,
    pub coils: Vec<bool>,
    pub discrete: Vec<bool>,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory {
            holding: vec![0; 65536],
            input: vec![0; 65536],
            coils: vec![false; 65536],
            discrete: vec![false; 65536],
        }
    }
}

impl Memory {
    /// Writes `value` as a tag of `data_type` and `order` at `area`/`address`.
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
        let a = usize::from(address);
        match area {
            Area::Coil => self.coils[a] = matches!(value, Value::Bool(true)),
            Area::Discrete => self.discrete[a] = matches!(value, Value::Bool(true)),
            Area::Holding | Area::Input => {
                let regs = encode_registers(&spec, &value).unwrap();
                let target = if area == Area::Holding {
                    &mut self.holding
                } else {
                    &mut self.input
                };
                target[a..a + regs.len()].copy_from_slice(&regs);
            }
        }
    }
}

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
    behaviour: Behaviour,
}

fn slice<T: Clone>(v: &[T], addr: u16, cnt: u16) -> Result<Vec<T>, ExceptionCode> {
    let a = usize::from(addr);
    let end = a + usize::from(cnt);
    v.get(a..end)
        .map(<[T]>::to_vec)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

impl tokio_modbus::server::Service for Service {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Request<'static>) -> Self::Future {
        if let Behaviour::Exception(code) = self.behaviour {
            return future::ready(Err(code));
        }
        let m = self.memory.lock().unwrap();
        let r = match req {
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
            // The gateway must never write; a write is answered with an error the test sees.
            _ => Err(ExceptionCode::IllegalFunction),
        };
        future::ready(r)
    }
}

/// A device serving until dropped.
#[derive(Debug)]
pub struct Device {
    pub addr: SocketAddr,
    pub memory: Arc<Mutex<Memory>>,
    task: JoinHandle<()>,
}

impl Device {
    /// A Modbus TCP server on a free port (or on `port`).
    pub async fn start(memory: Memory, behaviour: Behaviour, port: u16) -> Device {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let memory = Arc::new(Mutex::new(memory));
        let service = Service {
            memory: Arc::clone(&memory),
            behaviour,
        };
        let task = tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream, socket_addr| {
                let service = service.clone();
                async move { accept_tcp_connection(stream, socket_addr, |_| Ok(Some(service.clone()))) }
            };
            let _ = server.serve(&on_connected, |_err| {}).await;
        });
        Device { addr, memory, task }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
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
