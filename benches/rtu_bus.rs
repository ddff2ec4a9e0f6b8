//! `cargo bench --bench rtu_bus`: how much of a serial line the gateway's RTU bus uses.
//!
//! A paced line: two pseudo-terminals whose masters a relay thread joins, passing each frame no
//! faster than the baud rate allows (11 bits a character, parity on) and starting a frame only
//! after 3.5 characters of silence, as the wire would. On one end, `UNITS` simulated energy
//! meters (one RTU line, a unit id each); on the other, the gateway's bus polling one machine
//! per unit as fast as the bus allows (10 input registers each), and then, on the same line in
//! the same run, pymodbus's own serial client doing the same polls
//! (`benches/peers/pymodbus_poll.py`). The relay counts what crossed the wire: requests per
//! second, and the share of the line's capacity used, (wire time of requests + replies + the
//! required silences) ÷ elapsed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::ring::{self, WhenFull};
use shopfloor_core::{MachineId, MachineStatus, StatusReporter};
use shopfloor_modbus::bus::{self, Bus};
use shopfloor_modbus::driver::ModbusMachine;
use shopfloor_modbus::link::{Link, SerialLine};
use shopfloor_modbus::plan::PlanLimits;
use shopfloor_modbus::rtu::{LineTiming, Parity};
use shopfloor_modbus::{Area, DataType, TagSpec};
use shopfloor_sim::SimKind;
use shopfloor_sim::rtu_server::{SimUnit, serve_rtu_serial};
use shopfloor_sim::server::SimMachine;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const UNITS: u8 = 4;
const REGISTERS: u16 = 10;
const RUN: Duration = Duration::from_secs(8);

struct NoBoard;
impl StatusReporter for NoBoard {
    fn report(&self, _: MachineId, _: MachineStatus) {}
}

/// One end of the line: the master, kept by the relay, and the path of its slave.
struct End {
    master: OwnedFd,
    _slave: OwnedFd,
    path: PathBuf,
}

fn pty() -> End {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: termios is plain data; tcgetattr fills it for the valid descriptor `slave`.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is a writable buffer of the length given.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0);
    // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    End {
        master,
        _slave: slave,
        path: PathBuf::from(path.to_string_lossy().into_owned()),
    }
}

/// What crossed the wire.
#[derive(Default)]
struct Wire {
    chars: AtomicU64,
    frames: AtomicU64,
    requests: AtomicU64,
}

/// The relay: frames from either master to the other, paced as the wire would carry them.
struct PacedLine {
    gateway: PathBuf,
    device: PathBuf,
    wire: Arc<Wire>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PacedLine {
    fn start(timing: LineTiming) -> PacedLine {
        let (a, b) = (pty(), pty());
        let wire = Arc::new(Wire::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (gateway, device) = (a.path.clone(), b.path.clone());
        let (w, s) = (Arc::clone(&wire), Arc::clone(&stop));
        let thread = std::thread::spawn(move || relay(a, b, timing, &w, &s));
        PacedLine {
            gateway,
            device,
            wire,
            stop,
            thread: Some(thread),
        }
    }

    /// (chars, frames, requests) so far.
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.wire.chars.load(Ordering::SeqCst),
            self.wire.frames.load(Ordering::SeqCst),
            self.wire.requests.load(Ordering::SeqCst),
        )
    }
}

impl Drop for PacedLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sleep_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_micros(300) {
            std::thread::sleep(left - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn relay(a: End, b: End, timing: LineTiming, wire: &Wire, stop: &AtomicBool) {
    let fds = [a.master.as_raw_fd(), b.master.as_raw_fd()];
    let mut line_free = Instant::now();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        let mut polls = [
            libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fds[1],
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `polls` is an array of two valid pollfd entries.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), 2, 50) };
        if n <= 0 {
            continue;
        }
        for (i, p) in polls.iter().enumerate() {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: reading into a buffer of the length given from a valid descriptor.
            let got = unsafe { libc::read(fds[i], buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                continue;
            }
            let got = got as usize;
            let now = Instant::now();
            // A frame starts no sooner than 3.5 characters after the line went quiet; bytes that
            // come while the line is still busy continue the frame on it.
            let start = if now >= line_free {
                wire.frames.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    wire.requests.fetch_add(1, Ordering::SeqCst);
                }
                now.max(line_free + timing.silence())
            } else {
                line_free
            };
            line_free = start + timing.chars(got);
            wire.chars.fetch_add(got as u64, Ordering::SeqCst);
            sleep_until(line_free);
            let other = fds[1 - i];
            // SAFETY: writing `got` bytes of `buf` to a valid descriptor.
            unsafe { libc::write(other, buf.as_ptr().cast(), got) };
        }
    }
}

fn machine(unit: u8, port: &Path, baud: u32) -> ModbusMachine {
    let tags = (0..REGISTERS / 2)
        .map(|i| TagSpec::new(Area::Input, i * 2, DataType::F32))
        .collect();
    ModbusMachine {
        id: MachineId(u16::from(unit)),
        name: format!("meter-{unit}"),
        link: Link::Rtu(SerialLine {
            port: port.display().to_string(),
            baud,
            parity: Parity::Even,
            stop_bits: 1,
        }),
        unit_id: unit,
        poll_interval: Duration::from_millis(1),
        timeout: Duration::from_millis(300),
        tags,
        limits: PlanLimits::default(),
        publish: shopfloor_core::emit::Publish::Every,
    }
}

/// Requests per second and the wire share over the `RUN` after the first second.
fn measure(line: &PacedLine, timing: LineTiming, run: Duration) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs(1));
    let (c0, f0, r0) = line.counts();
    let t0 = Instant::now();
    std::thread::sleep(run);
    let (c1, f1, r1) = line.counts();
    let elapsed = t0.elapsed();
    let busy = timing.chars((c1 - c0) as usize) + timing.silence() * (f1 - f0) as u32;
    (
        (r1 - r0) as f64 / elapsed.as_secs_f64(),
        busy.as_secs_f64() / elapsed.as_secs_f64(),
    )
}

fn units() -> Vec<SimUnit> {
    (1..=UNITS)
        .map(|unit| SimUnit {
            unit,
            machine: SimMachine {
                kind: SimKind::EnergyMeter,
                seed: u64::from(unit),
                speedup: 1.0,
                faults: Default::default(),
            },
        })
        .collect()
}

/// A paced line at `baud` with the simulated meters on its device end, and what stops them.
fn line_with_meters(
    rt: &tokio::runtime::Runtime,
    baud: u32,
) -> (LineTiming, PacedLine, CancellationToken) {
    let timing = LineTiming::new(baud, Parity::Even, 1);
    let line = PacedLine::start(timing);
    let stop = CancellationToken::new();
    let device = SerialLine {
        port: line.device.display().to_string(),
        baud,
        parity: Parity::None,
        stop_bits: 1,
    };
    rt.spawn(serve_rtu_serial(device, units(), stop.child_token()));
    (timing, line, stop)
}

fn gateway_case(rt: &tokio::runtime::Runtime, baud: u32) -> (f64, f64) {
    let (timing, line, stop) = line_with_meters(rt, baud);
    let machines: Vec<ModbusMachine> = (1..=UNITS)
        .map(|u| machine(u, &line.gateway, baud))
        .collect();
    let (producers, mut consumer) =
        ring::with_lanes(&vec![4096; machines.len()], WhenFull::DropOldest).unwrap();
    let bus = Bus {
        link: machines[0].link.clone(),
        machines,
    };
    rt.spawn(bus::run(
        bus,
        producers,
        Arc::new(NoBoard),
        stop.child_token(),
    ));
    let drained = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&drained);
    let drainer = std::thread::spawn(move || {
        let mut out = Vec::new();
        while !done.load(Ordering::SeqCst) {
            out.clear();
            consumer.drain(&mut out, 4096);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let result = measure(&line, timing, RUN);
    stop.cancel();
    drained.store(true, Ordering::SeqCst);
    let _ = drainer.join();
    result
}

fn pymodbus_case(rt: &tokio::runtime::Runtime, baud: u32) -> Option<(f64, f64)> {
    let (timing, line, stop) = line_with_meters(rt, baud);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/pymodbus_poll.py");
    let seconds = (RUN + Duration::from_secs(3)).as_secs().to_string();
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args([
            &line.gateway.display().to_string(),
            &baud.to_string(),
            &UNITS.to_string(),
            &REGISTERS.to_string(),
            &seconds,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let result = measure(&line, timing, RUN);
    let _ = child.kill();
    let _ = child.wait();
    stop.cancel();
    (result.0 > 0.0).then_some(result)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "rtu_bus: {UNITS} units, one read of {REGISTERS} input registers each, polled as fast \
         as the bus allows, {}s a case",
        RUN.as_secs()
    );
    println!(
        "{:>7}  {:>14} {:>11}  {:>14} {:>11}",
        "baud", "gateway req/s", "wire share", "pymodbus req/s", "wire share"
    );
    for baud in [9600, 19200, 115_200] {
        let (g_rate, g_share) = gateway_case(&rt, baud);
        let peer = pymodbus_case(&rt, baud);
        let (p_rate, p_share) = peer.map_or(("-".into(), "-".into()), |(r, s)| {
            (format!("{r:.1}"), format!("{:.1} %", s * 100.0))
        });
        println!(
            "{baud:>7}  {g_rate:>14.1} {:>9.1} %  {p_rate:>14} {p_share:>11}",
            g_share * 100.0
        );
    }
}
