//! The live dashboard under hall load: 50 Modbus machines × 50 tags polled at 10 Hz (25,000
//! samples/s) through the gateway's `/api/stream` to 5 clients, and the dashboard page itself
//! in headless Chromium (when installed).
//!
//! `cargo bench --bench dashboard_load` prints:
//! - the gateway's CPU (% of one core) with no stream client, then with 5: the difference is
//!   what the HTTP part costs (encoding each batch once, and sending it to every client);
//! - samples/s each client received (all of them, or the bench says so);
//! - the page's frames per second and script time per frame while it shows all 2,500 tags.
//!
//! Real processes and sockets throughout: the devices are Modbus TCP servers in this process,
//! the gateway is the release `shopfloor` binary, its CPU is read from `/proc`.

use shopfloor_benches::{asked_to_run, cpu_share, device_runtime, u16_devices};
use shopfloor_tests::browser::Browser;
use shopfloor_tests::device::Device;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::wait_ready;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MACHINES: usize = 50;
const TAGS: usize = 50;
const CLIENTS: usize = 5;
const MEASURE: Duration = Duration::from_secs(20);

fn config(http: SocketAddr, devices: &[Device]) -> String {
    let mut c = format!("[gateway]\nname = \"load\"\nhttp = \"{http}\"\n");
    for (i, d) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[machine]]\nid = \"m{i:02}\"\nkind = \"cnc\"\nprotocol = \"modbus-tcp\"\n\
             address = \"{}\"\npoll_interval = \"100ms\"\n",
            d.addr
        ));
        for t in 0..TAGS {
            c.push_str(&format!(
                "  [[machine.tag]]\n  name = \"t{t:02}\"\n  area = \"holding\"\n  address = {t}\n  type = \"u16\"\n"
            ));
        }
    }
    c
}

/// A client of `/api/stream` counting the samples it receives.
fn stream_client(addr: SocketAddr, samples: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = write!(
        s,
        "GET /api/stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    );
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                let n = line.matches("\"machine\":").count() as u64;
                samples.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let rt = device_runtime();
    let devices = u16_devices(&rt, MACHINES, TAGS);
    let http: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = GatewayProcess::start_with_env(&config(http, &devices), &[("RUST_LOG", "warn")]);
    assert!(wait_ready(http, Duration::from_secs(60)), "{}", gw.log());
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    println!(
        "dashboard_load: {MACHINES} machines × {TAGS} tags at 10 Hz = {} samples/s offered",
        MACHINES * TAGS * 10
    );
    std::thread::sleep(Duration::from_secs(5));
    let idle = cpu_share(pid, MEASURE);
    println!(
        "  gateway CPU, no stream client:   {:5.1} % of one core",
        idle * 100.0
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let clients: Vec<_> = counts
        .iter()
        .map(|c| {
            let (c, stop) = (Arc::clone(c), Arc::clone(&stop));
            std::thread::spawn(move || stream_client(http, c, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let t0 = Instant::now();
    let busy = cpu_share(pid, MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let rates: Vec<f64> = counts
        .iter()
        .zip(&before)
        .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / secs)
        .collect();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    println!(
        "  gateway CPU, {CLIENTS} stream clients:  {:5.1} % of one core",
        busy * 100.0
    );
    println!(
        "  HTTP part (difference):          {:5.1} % of one core (floor: at most 10 %)",
        (busy - idle) * 100.0
    );
    println!(
        "  samples/s per client:            {}",
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
        let browser = Browser::start(1920, 1080);
        browser.goto(&format!("http://{http}/"));
        let ready = browser.wait_for(
            "return document.querySelectorAll('.card').length === 50 && shopfloor.stats.samples > 25000;",
            Duration::from_secs(30),
        );
        if ready.is_none() {
            println!("  page: the 50 cards did not fill within 30 s");
            return;
        }
        browser.eval(
            "const s = shopfloor.stats; s.frames = 0; s.renderMsTotal = 0; s.renderMsMax = 0; s.samples = 0; s.eventMsTotal = 0;\
             window.__t0 = performance.now(); return null;",
        );
        let page_cpu = cpu_share(pid, MEASURE);
        let s = browser.eval(
            "const s = shopfloor.stats; return [s.frames, s.renderMsTotal, s.renderMsMax, s.samples, performance.now() - window.__t0, s.eventMsTotal];",
        );
        let f = |i: usize| s[i].as_f64().unwrap_or(0.0);
        let wall = f(4) / 1000.0;
        println!(
            "  page, hall of 2,500 tags:        {:.1} frames/s, {:.2} ms script per frame (max {:.1} ms), {:.0} samples/s shown",
            f(0) / wall,
            f(1) / f(0).max(1.0),
            f(2),
            f(3) / wall
        );
        println!(
            "  page main thread busy:           {:5.1} % (parsing events {:.1} %, drawing {:.1} %)",
            (f(1) + f(5)) / f(4) * 100.0,
            f(5) / f(4) * 100.0,
            f(1) / f(4) * 100.0
        );
        println!(
            "  gateway CPU with the page open:  {:5.1} % of one core",
            page_cpu * 100.0
        );
    } else {
        println!("  page: skipped (apt-get install chromium chromium-driver to measure it)");
    }
    drop(gw);
    drop(devices);
}
