//! `cargo bench --bench opcua_subscriptions`: 10,000 monitored items changing every 100 ms
//! (100,000 changes/s) on an async-opcua server → the release gateway (subscribe mode) → a real
//! mosquitto → a subscriber. Reports changes/s delivered, gateway CPU time per sample and
//! gateway RSS per monitored item: what 10,000 items take above the same gateway with one item
//! (its code, runtime and ring buffer), and the whole RSS divided by the items.
//!
//! The server and the subscriber run in this process on one worker thread; broker and gateway
//! are their own processes; everything shares the machine's two cores. The server's default
//! limit of 1,000 monitored items per subscription makes the gateway split the items over ten
//! subscriptions, as it would on a real server.

use opcua::server::address_space::Variable;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint};
use opcua::types::{DataValue, NodeId};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_benches::{asked_to_run, cpu_seconds, device_runtime, rss_bytes};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ITEMS: usize = 10_000;
const MEASURE: Duration = Duration::from_secs(20);
const NS: &str = "urn:shopfloor:bench";

/// Serves `ITEMS` Double variables that all change every 100 ms, on a free port.
async fn server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("shopfloor-bench-opcua-{port}"));
    let (server, handle) = ServerBuilder::new()
        .application_name("bench server")
        .application_uri("urn:shopfloor:bench:server")
        .pki_dir(dir)
        .host("127.0.0.1")
        .port(port)
        .discovery_urls(vec!["/".to_owned()])
        .add_endpoint(
            "none",
            ServerEndpoint::new_none("/", &[ANONYMOUS_USER_TOKEN_ID.to_owned()]),
        )
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NS.to_owned(),
                ..Default::default()
            },
            "bench",
        ))
        .build()
        .unwrap_or_else(|e| panic!("server: {e}"));
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .unwrap_or_else(|| panic!("no node manager"));
    let ns = handle.get_namespace_index(NS).unwrap_or(2);
    let ids: Vec<NodeId> = (0..ITEMS).map(|i| NodeId::new(ns, i as u32 + 1)).collect();
    {
        let space = manager.address_space();
        let mut space = space.write();
        let folder = NodeId::new(ns, "Items");
        space.add_folder(&folder, "Items", "Items", &NodeId::objects_folder_id());
        let vars = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Variable::new(id, format!("v{i}"), format!("v{i}"), 0.0f64))
            .collect();
        let _ = space.add_variables(vars, &folder);
    }
    let subscriptions = handle.subscriptions().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0.0f64;
        loop {
            tick.tick().await;
            n += 1.0;
            let updates = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id, None, DataValue::new_now(n + i as f64 * 1e-4)));
            let _ = manager.set_values(&subscriptions, updates);
        }
    });
    tokio::spawn(server.run_with(listener));
    port
}

/// Counts the values in machine-layout messages, once per topic and `seq` (a message that
/// comes again is not counted) and leaving out nulls.
async fn subscribe(port: u16, seen: Arc<AtomicU64>) {
    let mut counted: std::collections::HashSet<(String, u64)> = std::collections::HashSet::new();
    let mut options = MqttOptions::new("bench-opcua-sub", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let _ = client.subscribe("ua/#", QoS::AtMostOnce).await;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) if !p.topic.contains("/_") => {
                // {"timestamp_ms":T,"seq":S,"values":{"v0":1.0,…}}
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                    continue;
                };
                let Some(seq) = json["seq"].as_u64() else {
                    continue;
                };
                if !counted.insert((p.topic.clone(), seq)) {
                    continue;
                }
                let n = json["values"]
                    .as_object()
                    .map_or(0, |v| v.values().filter(|x| !x.is_null()).count());
                seen.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let rt = device_runtime();
    let port = rt.block_on(server());
    let broker = Mosquitto::start();
    let seen = Arc::new(AtomicU64::new(0));
    rt.spawn(subscribe(broker.port, Arc::clone(&seen)));
    let config = |items: usize| {
        let pki = std::env::temp_dir().join("shopfloor-bench-opcua-gateway");
        let mut config = format!(
            "[gateway]\nname = \"ua-bench\"\npki_dir = \"{}\"\n[mqtt]\nurl = \"{}\"\n\
             topic_prefix = \"ua\"\nlayout = \"machine\"\nqos = 1\n\n[[machine]]\nid = \"items\"\n\
             protocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}\"\n\
             publishing_interval = \"100ms\"\ntimeout = \"5s\"\n",
            pki.display(),
            broker.url()
        );
        for i in 0..items {
            config.push_str(&format!(
                "  [[machine.tag]]\n  name = \"v{i}\"\n  node = \"nsu={NS};i={}\"\n",
                i + 1
            ));
        }
        config
    };
    let quiet = [("RUST_LOG", "warn,opcua_client=off,opcua_core=off")];
    // The same gateway with one item first: what it takes before any item (code, runtime,
    // the ring buffer), so that what each item adds can be told apart.
    let idle_rss = {
        let gw = GatewayProcess::start_with_env(&config(1), &quiet);
        let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
        std::thread::sleep(Duration::from_secs(10));
        rss_bytes(pid)
    };
    let gw = GatewayProcess::start_with_env(&config(ITEMS), &quiet);
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    std::thread::sleep(Duration::from_secs(10));
    let me = std::process::id();
    let (s0, c0, m0, t0) = (
        seen.load(Ordering::Relaxed),
        cpu_seconds(pid),
        cpu_seconds(me),
        Instant::now(),
    );
    std::thread::sleep(MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let rate = (seen.load(Ordering::Relaxed) - s0) as f64 / secs;
    let cpu = (cpu_seconds(pid) - c0) / secs;
    let server_cpu = (cpu_seconds(me) - m0) / secs;
    let rss = rss_bytes(pid);
    println!(
        "opcua_subscriptions: {ITEMS} monitored items changing every 100 ms = 100,000 changes/s offered"
    );
    println!(
        "  delivered to MQTT: {rate:>9.0} samples/s (server and subscriber in this process: {:.0} % of a core)",
        server_cpu * 100.0
    );
    println!(
        "  gateway CPU:       {:>9.2} µs per sample ({:.1} % of a core; floor: at most 2 µs)",
        cpu * 1e6 / rate.max(1.0),
        cpu * 100.0
    );
    println!(
        "  gateway RSS:       {:>9.0} B per monitored item above a gateway with one item \
         ({:.1} MiB, against {:.1} MiB; floor: at most 1 KB)",
        rss.saturating_sub(idle_rss) as f64 / (ITEMS - 1) as f64,
        rss as f64 / 1048576.0,
        idle_rss as f64 / 1048576.0
    );
    println!(
        "                     {:>9.0} B per monitored item, everything divided by the items",
        rss as f64 / ITEMS as f64
    );
    if !gw.log().is_empty() {
        println!("  gateway warnings:\n{}", gw.log());
    }
}
