//! OPC UA security: Basic256Sha256 with SignAndEncrypt against a server that offers nothing
//! else and trusts no one by default. Trust is set up both ways by moving certificate files,
//! as the gateway's messages tell an engineer to; an untrusted server certificate is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_sim::SimKind;
use shopfloor_sim::profile::Deadbands;
use shopfloor_sim::ua_server::UaOptions;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, wait_ready};
use shopfloor_tests::opcua::SimOpcua;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn machine(http: SocketAddr) -> serde_json::Value {
    get(http, "/api/machines", None).json()[0].clone()
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < until, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_encrypted_once_trust_is_set_up_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server_pki = dir.path().join("server");
    let gateway_pki = dir.path().join("gateway");
    let opts = UaOptions {
        pki_dir: server_pki.clone(),
        trust_client_certs: false,
        secure_only: true,
        users: vec![("operator".into(), "s3cret".into())],
    };
    let _server = SimOpcua::start_with(SimKind::InjectionMoulding, free_port(), opts).await;
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[gateway]\nname = \"secure\"\nhttp = \"{http}\"\npki_dir = \"{}\"\n\n\
         [[machine]]\nid = \"imm-secure\"\nkind = \"injection-moulding\"\nprotocol = \"opcua\"\n\
         endpoint = \"opc.tcp://127.0.0.1:{}\"\nsecurity_policy = \"Basic256Sha256\"\n\
         security_mode = \"SignAndEncrypt\"\nusername = \"operator\"\npassword_env = \"UA_PW\"\n\
         publishing_interval = \"100ms\"\ntimeout = \"2s\"\n\n{}",
        gateway_pki.display(),
        _server.port,
        shopfloor_sim::ua_profile::to_toml(SimKind::InjectionMoulding, Deadbands::Suggested)
    );
    let mut gw = GatewayProcess::start_with_env(&config, &[("UA_PW", "s3cret")]);
    assert!(wait_ready(http, Duration::from_secs(30)), "{}", gw.log());
    // The gateway made its own certificate and said so.
    gw.expect_log(
        "created this gateway's certificate",
        Duration::from_secs(10),
    );
    let own = gateway_pki.join("own/cert.der");
    assert!(own.exists());

    // 1. Neither side knows the other. The server refuses first; the message names the
    // gateway's certificate for the server, and where the server's will be filed.
    gw.expect_log("is not trusted: move", Duration::from_secs(20));
    let log = gw.log();
    assert!(log.contains(&own.display().to_string()), "{log}");
    assert!(
        log.contains("shopfloor simulated injection-moulding ["),
        "{log}"
    );
    assert_eq!(machine(http)["state"], "offline");
    // On the server, as on any OPC UA server: the refused client certificate is under its
    // rejected/; moving it to trusted/ trusts it. It is the gateway's own certificate.
    let refused = files(&server_pki.join("rejected"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        std::fs::read(&refused[0]).unwrap(),
        std::fs::read(&own).unwrap()
    );
    std::fs::rename(
        &refused[0],
        server_pki
            .join("trusted")
            .join(refused[0].file_name().unwrap()),
    )
    .unwrap();

    // 2. The server lets the gateway in; the gateway refuses the server's certificate and
    // files it under rejected/, the file its message named.
    let until = Instant::now() + Duration::from_secs(30);
    while files(&gateway_pki.join("rejected")).is_empty() {
        assert!(
            Instant::now() < until,
            "the server's certificate never reached rejected/\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rejected = files(&gateway_pki.join("rejected"));
    assert!(
        gw.log().contains(&rejected[0].display().to_string()),
        "{}",
        gw.log()
    );
    assert_eq!(machine(http)["state"], "offline");
    let name = rejected[0].file_name().unwrap();
    std::fs::rename(&rejected[0], gateway_pki.join("trusted").join(name)).unwrap();

    // 3. Trusted both ways: data flows, signed and encrypted, as user operator.
    wait_for(
        "data over the secure channel",
        Duration::from_secs(60),
        || {
            let m = machine(http);
            m["state"] == "online"
                && m["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["quality"] == "good")
        },
    )
    .await;
    assert!(gw.is_running());
    // The password never reaches the log.
    assert!(!gw.log().contains("s3cret"));
}
