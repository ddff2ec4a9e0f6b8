//! The dashboard page in a real headless Chromium: against `shopfloor demo` it shows every
//! machine with live values that change, a machine page with every tag and its chart, Dutch
//! labels on request; a machine that goes offline turns grey with its values shown as gaps; a
//! machine added by a config reload appears on the open page.
//! Screenshots go to `target/test-artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::browser::{Browser, artifact};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::get;
use std::time::Duration;

const CARDS_LIVE: &str = r#"
    const cards = [...document.querySelectorAll('.card')];
    if (cards.length !== 7) return null;
    const live = cards.every(c => c.dataset.state !== 'offline'
        && [...c.querySelectorAll('.value')].every(v => v.textContent !== '—'));
    return live && document.getElementById('conn').dataset.state === 'live'
        ? cards.map(c => c.dataset.machine) : null;
"#;

const CARD_VALUES: &str = r#"
    return [...document.querySelectorAll('.card')].map(c =>
        [...c.querySelectorAll('.value')].map(v => v.textContent).join(' ')).join(' | ');
"#;

#[test]
fn the_hall_shows_every_machine_live_and_a_machine_page_every_tag() {
    let (demo, _, http) =
        GatewayProcess::demo_on_free_ports(&["--speedup", "30"], Duration::from_secs(30));
    let browser = Browser::start(1920, 1080);
    browser.goto(&format!("http://{http}/"));

    let ids = browser
        .wait_for(CARDS_LIVE, Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "not every machine live on the page: {}\n{}",
                browser.eval(CARD_VALUES),
                demo.log()
            )
        });
    assert_eq!(
        ids,
        serde_json::json!([
            "cnc-1", "cnc-2", "imm-1", "imm-2", "energy-1", "energy-2", "energy-3"
        ])
    );

    // Values move: the simulated machines run, and the page follows the stream.
    // Counted first: a sample landing between the two reads must not look like no stream.
    let samples_before = browser.eval("return shopfloor.stats.samples;");
    let before = browser.eval(CARD_VALUES);
    let changed = browser.wait_for(
        &format!(
            "const now = (() => {{ {CARD_VALUES} }})(); return now !== {before} ? now : null;"
        ),
        Duration::from_secs(15),
    );
    assert!(changed.is_some(), "values did not change: {before}");
    let streamed = browser.wait_for(
        &format!("return shopfloor.stats.samples > {samples_before} ? true : null;"),
        Duration::from_secs(10),
    );
    assert!(
        streamed.is_some(),
        "no sample arrived on the stream after {samples_before}"
    );
    // Every card's sparkline has been drawn (some pixel is not transparent).
    let drawn = browser.wait_for(
        r#"
        const sparks = [...document.querySelectorAll('canvas.spark')];
        const inked = c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; };
        return sparks.length === 7 && sparks.every(inked);
        "#,
        Duration::from_secs(10),
    );
    assert!(drawn.is_some(), "a sparkline stayed empty");
    // Every CNC and moulding machine shows its OEE; cnc-1's availability is a percentage once
    // it has left its first setup and a KPI interval has passed.
    let oee_cards = browser.eval(
        "return [...document.querySelectorAll('.card')].filter(c => c.querySelector('.oee')).map(c => c.dataset.machine);",
    );
    assert_eq!(
        oee_cards,
        serde_json::json!(["cnc-1", "cnc-2", "imm-1", "imm-2"])
    );
    let availability = browser.wait_for(
        r#"
        const a = document.querySelector('.card[data-machine="cnc-1"] [data-kpi="availability"]');
        return a && a.textContent.endsWith('%') ? a.textContent : null;
        "#,
        Duration::from_secs(60),
    );
    assert!(
        availability.is_some(),
        "cnc-1's card shows no availability: {}",
        browser.eval("return document.querySelector('.card .oee')?.textContent ?? null;")
    );
    browser.screenshot(&artifact("dashboard-hall.png"));

    // The machine page: a row per tag, as many as the API lists, and a chart per number.
    let api = get(http.parse().unwrap(), "/api/machines", None).json();
    let tags = api[0]["tags"].as_array().unwrap().len();
    browser.eval("location.hash = '#/m/cnc-1'; return null;");
    let rows = browser.wait_for(
        r#"
        const rows = document.querySelectorAll('table.tags tbody tr');
        // Text tags may be empty (no alarm text); no tag may be without a value, but a KPI
        // whose ratio has a zero denominator is left out.
        const filled = [...document.querySelectorAll('table.tags td.num:not([data-tag^="kpi_"])')]
            .every(td => td.textContent !== '—');
        return filled ? rows.length : null;
        "#,
        Duration::from_secs(10),
    );
    assert_eq!(rows, Some(serde_json::json!(tags)));
    let charts = browser
        .wait_for(
            r#"
            const c = document.querySelector('canvas[data-tag="spindle_speed"]');
            if (!c) return null;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i]) return document.querySelectorAll('.chart canvas').length;
            return null;
            "#,
            Duration::from_secs(10),
        )
        .expect("the spindle speed chart stayed empty");
    assert!(charts.as_u64().unwrap() >= 15, "{charts} charts");
    // The KPI breakdown of the window and the shift, with energy per part (cnc-1 has the meter).
    let breakdown = browser.wait_for(
        r#"
        const cols = document.querySelectorAll('.kpi-panel .kpi-column');
        const text = document.querySelector('.kpi-panel')?.textContent ?? '';
        return cols.length === 2 && text.includes('Energy per part') ? cols.length : null;
        "#,
        Duration::from_secs(15),
    );
    assert!(
        breakdown.is_some(),
        "no KPI breakdown on the machine page: {}",
        browser.eval("return document.querySelector('.kpi-panel')?.textContent ?? null;")
    );
    browser.screenshot(&artifact("dashboard-machine.png"));

    // Dutch on request, remembered across a reload.
    browser.eval("document.getElementById('lang').click(); return null;");
    let head = browser.eval(
        "return [document.querySelector('.brand').textContent, document.querySelector('table.tags th').textContent];",
    );
    assert_eq!(head, serde_json::json!(["Hal", "Tag"]));
    browser.reload();
    let brand = browser.wait_for(
        "const b = document.querySelector('.brand').textContent; return b === 'Hal' ? b : null;",
        Duration::from_secs(10),
    );
    assert!(brand.is_some(), "the language choice was not remembered");
}

#[test]
fn an_offline_machine_turns_grey_and_its_values_become_gaps() {
    let sim_port = free_port();
    let http = format!("127.0.0.1:{}", free_port());
    let config = format!(
        r#"
[gateway]
name = "flaky"
http = "{http}"

[[machine]]
id = "cnc-9"
kind = "cnc"
protocol = "modbus-tcp"
address = "127.0.0.1:{sim_port}"
simulator = "cnc"
poll_interval = "100ms"
timeout = "300ms"

  [machine.faults]
  offline_every = "12s"
  offline_for = "4s"

  [[machine.tag]]
  name = "state"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "spindle_speed"
  area = "holding"
  address = 19
  type = "f32"
  order = "CDAB"
  unit = "rpm"
"#
    );
    let sim = GatewayProcess::simulate(&config, &[]);
    let gw = GatewayProcess::start(&config);
    let browser = Browser::start(1280, 800);
    browser.goto(&format!("http://{http}/#/m/cnc-9"));
    let online = browser.wait_for(
        r#"const b = document.querySelector('.machine .badge');
           return b && b.dataset.state !== 'offline'
               && document.querySelector('td[data-tag="spindle_speed"]').textContent !== '—'
               ? b.dataset.state : null;"#,
        Duration::from_secs(20),
    );
    assert!(online.is_some(), "{}\n{}", gw.log(), sim.log());
    let offline = browser.wait_for(
        r#"const b = document.querySelector('.machine .badge');
           const v = document.querySelector('td[data-tag="spindle_speed"]');
           return b.dataset.state === 'offline' && v.textContent === '—' && v.classList.contains('bad');"#,
        Duration::from_secs(20),
    );
    assert!(offline.is_some(), "{}", gw.log());
    // In the chart's series the outage is a null (a gap), never a zero.
    let gap = browser.eval(
        r#"const s = shopfloor.model.machines.get('cnc-9').tags.get('spindle_speed').series;
           return s.v.slice(s.start).some(v => v === null);"#,
    );
    assert_eq!(gap, serde_json::json!(true));
    browser.screenshot(&artifact("dashboard-offline.png"));
    // And back: the machine answers again after its outage.
    let back = browser.wait_for(
        r#"const v = document.querySelector('td[data-tag="spindle_speed"]');
           return v.textContent !== '—';"#,
        Duration::from_secs(20),
    );
    assert!(back.is_some(), "{}", gw.log());
}

/// A machine added to the config of a running gateway (SIGHUP) appears on an open page,
/// without a reload of the page.
#[test]
fn a_machine_added_or_removed_by_a_reload_shows_on_the_open_page() {
    let (port_a, port_b) = (free_port(), free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let machine = |id: &str, port: u16| {
        format!(
            "\n[[machine]]\nid = \"{id}\"\nkind = \"cnc\"\nprotocol = \"modbus-tcp\"\n\
             address = \"127.0.0.1:{port}\"\nsimulator = \"cnc\"\npoll_interval = \"100ms\"\n\n  \
             [[machine.tag]]\n  name = \"state\"\n  area = \"holding\"\n  address = 0\n  type = \"u16\"\n"
        )
    };
    let config =
        |machines: &str| format!("[gateway]\nname = \"growing\"\nhttp = \"{http}\"\n{machines}");
    let both = format!("{}{}", machine("cnc-a", port_a), machine("cnc-b", port_b));
    let sim = GatewayProcess::simulate(&config(&both), &[]);
    let gw = GatewayProcess::start(&config(&machine("cnc-a", port_a)));
    let browser = Browser::start(1280, 800);
    browser.goto(&format!("http://{http}/"));
    let cards = |n: usize| {
        format!(
            "const c = [...document.querySelectorAll('.card')].map(c => c.dataset.machine);
             return c.length === {n} ? c : null;"
        )
    };
    let first = browser.wait_for(&cards(1), Duration::from_secs(20));
    assert_eq!(first, Some(serde_json::json!(["cnc-a"])), "{}", gw.log());
    gw.rewrite(&config(&both));
    gw.hangup();
    gw.expect_event("config_reloaded", Duration::from_secs(20));
    let after = browser.wait_for(&cards(2), Duration::from_secs(30));
    assert_eq!(
        after,
        Some(serde_json::json!(["cnc-a", "cnc-b"])),
        "{}\n{}",
        gw.log(),
        sim.log()
    );
    browser.screenshot(&artifact("dashboard-after-reload.png"));
    // cnc-a leaves the hall: its card goes, the page stays.
    gw.rewrite(&config(&machine("cnc-b", port_b)));
    gw.hangup();
    gw.expect_events("config_reloaded", 2, Duration::from_secs(20));
    let left = browser.wait_for(&cards(1), Duration::from_secs(30));
    assert_eq!(left, Some(serde_json::json!(["cnc-b"])), "{}", gw.log());
}
