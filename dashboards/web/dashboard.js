// The hall dashboard: a card per machine, and a page per machine with every tag and its chart.
// Data: a snapshot from api/machines (again every few seconds, for machine states), history from
// api/machines/{id}/history, and every sample live from api/stream (Server-Sent Events, which
// the browser reconnects by itself). The DOM is touched once per animation frame, only where
// something changed, so a hall of 50 machines × 50 tags stays smooth.

import { Series, draw } from "./chart.js";
import { layout, machineState } from "./kinds.js";
import { ago, formatPercent, formatSeconds, formatValue, language, setLanguage, t, tagLabel } from "./i18n.js";

const SPARK_MS = 5 * 60 * 1000;
const WINDOWS_MIN = [1, 5, 10];
const STATE_POLL_MS = 5000;
const CHART_REDRAW_MS = 500;

// Bound to anything but loopback the API asks for a token; a browser's EventSource cannot send
// a header, so the page passes on the `access_token` it was opened with.
const token = new URLSearchParams(location.search).get("access_token");

function api(path) {
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}

async function getJson(path) {
  const r = await fetch(api(path), { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

/** Everything the page knows; `dirty` holds the ids of machines to redraw. */
const model = {
  machines: new Map(),
  order: [],
  /** The machines and their tag names as last built: a reload may change either. */
  shape: "",
  dirty: new Set(),
  structureChanged: true,
  windowMin: 5,
  /** False until the first api/machines answer: the hall says it is loading, not empty. */
  loaded: false,
};

/** Counters for tests and for measuring smoothness (see tests/tests/dashboard_browser.rs). */
const stats = { samples: 0, events: 0, eventMsTotal: 0, frames: 0, renderMsMax: 0, renderMsTotal: 0, resyncs: 0 };
globalThis.shopfloor = { model, stats };

function machineFrom(json) {
  const tags = new Map();
  for (const tg of json.tags) {
    tags.set(tg.name, {
      name: tg.name,
      unit: tg.unit,
      value: tg.value,
      quality: tg.quality,
      ts: tg.timestamp_ms,
      series: null,
    });
  }
  const m = {
    id: json.id,
    kind: json.kind,
    protocol: json.protocol,
    state: json.state,
    error: json.error,
    lastSeen: json.last_seen_ms,
    tags,
  };
  m.layout = layout(m.kind, json.tags);
  const spark = m.layout.spark && tags.get(m.layout.spark);
  if (spark) spark.series = new Series(SPARK_MS);
  return m;
}

function applySnapshot(list) {
  if (!model.loaded) {
    model.loaded = true;
    model.structureChanged = true;
  }
  const ids = list.map((j) => j.id);
  const shape = list.map((j) => `${j.id}:${j.tags.map((tg) => tg.name).join(",")}`).join("\n");
  if (shape !== model.shape) {
    model.machines.clear();
    for (const j of list) model.machines.set(j.id, machineFrom(j));
    model.order = ids;
    model.shape = shape;
    model.structureChanged = true;
    return true;
  }
  for (const j of list) {
    const m = model.machines.get(j.id);
    m.state = j.state;
    m.error = j.error;
    m.lastSeen = Math.max(m.lastSeen ?? 0, j.last_seen_ms ?? 0) || null;
    for (const tg of j.tags) {
      const cur = m.tags.get(tg.name);
      if (cur && tg.timestamp_ms != null && (cur.ts == null || tg.timestamp_ms > cur.ts)) {
        cur.value = tg.value;
        cur.quality = tg.quality;
        cur.ts = tg.timestamp_ms;
      }
    }
    model.dirty.add(j.id);
  }
  return false;
}

async function loadSparks() {
  const jobs = [];
  for (const m of model.machines.values()) {
    const tag = m.layout.spark && m.tags.get(m.layout.spark);
    if (!tag) continue;
    jobs.push(
      getJson(`api/machines/${encodeURIComponent(m.id)}/history?tag=${tag.name}&seconds=${SPARK_MS / 1000}`)
        .then((points) => {
          tag.series.load(points);
          model.dirty.add(m.id);
        })
        .catch(() => {}),
    );
  }
  await Promise.all(jobs);
}

/** Fetches the snapshot; `full` (at start and after the stream was down) reloads history too. */
async function resync(full) {
  stats.resyncs++;
  const list = await getJson("api/machines");
  const rebuilt = applySnapshot(list);
  if (rebuilt || full) {
    await loadSparks();
    if (route().machine) await openMachine(route().machine);
  } else if (route().machine) {
    await loadKpi(route().machine);
  }
  schedule();
}

function onSamples(batch) {
  stats.events++;
  for (const s of batch) {
    const m = model.machines.get(s.machine);
    const tag = m?.tags.get(s.tag);
    if (!tag) continue;
    tag.value = s.value;
    tag.quality = s.quality;
    tag.ts = s.timestamp_ms;
    if (tag.series) tag.series.push(s.timestamp_ms, s.quality === "bad" ? null : s.value);
    if (s.quality !== "bad") m.lastSeen = Math.max(m.lastSeen ?? 0, s.timestamp_ms);
    model.dirty.add(m.id);
    stats.samples++;
  }
  schedule();
}

function setConn(state) {
  const el = document.getElementById("conn");
  el.dataset.state = state;
  el.textContent = t(state);
}

function connect() {
  setConn("connecting");
  let wasDown = false;
  const es = new EventSource(api("api/stream"));
  es.onopen = () => {
    setConn("live");
    // Whatever happened while the stream was down is fetched once, then the stream goes on.
    if (wasDown) resync(true).catch(() => {});
    wasDown = false;
  };
  es.onmessage = (e) => {
    const t0 = performance.now();
    try {
      onSamples(JSON.parse(e.data));
    } catch {
      /* a malformed event is skipped; the next snapshot corrects the page */
    }
    stats.eventMsTotal += performance.now() - t0;
  };
  es.onerror = () => {
    wasDown = true;
    setConn("reconnecting");
    // The browser retries by itself unless the server refused the stream outright.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
}

// ---------------------------------------------------------------- routing

function route() {
  const m = /^#\/m\/(.+)$/.exec(location.hash);
  return { machine: m ? decodeURIComponent(m[1]) : null };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

const view = { kind: null, cards: new Map(), page: null };

function renderStructure() {
  const main = document.getElementById("view");
  main.replaceChildren();
  view.cards.clear();
  view.page = null;
  const { machine } = route();
  if (machine) {
    view.kind = "machine";
    const m = model.machines.get(machine);
    if (!m) {
      main.append(el("p", { class: "empty" }, t("unknown_machine", { id: machine })));
      return;
    }
    view.page = buildMachinePage(m);
    main.append(view.page.root);
    return;
  }
  view.kind = "hall";
  if (!model.loaded) {
    main.append(el("p", { class: "empty" }, t("loading")));
    return;
  }
  if (model.order.length === 0) {
    main.append(el("p", { class: "empty" }, t("no_machines")));
    return;
  }
  const grid = el("section", { class: "hall" });
  for (const id of model.order) {
    const card = buildCard(model.machines.get(id));
    view.cards.set(id, card);
    grid.append(card.root);
  }
  main.append(grid);
}

// ---------------------------------------------------------------- hall

function buildCard(m) {
  const keys = m.layout.keys.map((name) => {
    const value = el("span", { class: "value", "data-tag": name });
    const unit = el("span", { class: "unit" }, m.tags.get(name)?.unit ?? "");
    return { name, value, root: el("div", { class: "key" }, el("span", { class: "label" }, tagLabel(name)), value, unit) };
  });
  const badge = el("span", { class: "badge" });
  const note = el("p", { class: "note" });
  const spark = el("canvas", { class: "spark" });
  const counter = el("span", { class: "counter" });
  const seen = el("span", { class: "seen" });
  const oee = m.tags.has("kpi_oee") ? buildOee() : null;
  const root = el(
    "a",
    { class: "card", href: `#/m/${encodeURIComponent(m.id)}`, "data-machine": m.id },
    el("div", { class: "card-head" }, el("h2", {}, m.id), el("span", { class: "kind" }, m.kind), badge),
    note,
    oee?.root,
    el("div", { class: "keys" }, ...keys.map((k) => k.root)),
    spark,
    el("div", { class: "card-foot" }, counter, seen),
  );
  const card = { root, badge, note, keys, spark, counter, seen, oee };
  fillCard(card, m);
  return card;
}

const PARTS = [
  ["availability", "A"],
  ["performance", "P"],
  ["quality", "Q"],
];

/** The OEE figure of a card, with availability, performance and quality beneath. */
function buildOee() {
  const figure = el("span", { class: "oee-figure", "data-kpi": "oee" });
  const parts = PARTS.map(([name, letter]) => {
    const value = el("span", { "data-kpi": name });
    return { name, value, root: el("span", { class: "oee-part", title: t(name) }, `${letter} `, value) };
  });
  const root = el(
    "div",
    { class: "oee" },
    el("div", {}, el("span", { class: "oee-label" }, t("oee")), figure),
    el("div", { class: "oee-parts" }, ...parts.map((p) => p.root)),
  );
  return { root, figure, parts };
}

function kpiOf(m, name) {
  const tag = m.tags.get(`kpi_${name}`);
  return tag && tag.quality !== "bad" ? tag.value : null;
}

function fillOee(oee, m) {
  oee.figure.textContent = formatPercent(kpiOf(m, "oee"));
  for (const p of oee.parts) p.value.textContent = formatPercent(kpiOf(m, p.name));
}

function showValue(elem, tag) {
  elem.textContent = tag && tag.quality !== "bad" ? formatValue(tag.value) : "—";
  elem.classList.toggle("bad", !tag || tag.quality === "bad");
  elem.classList.toggle("uncertain", tag?.quality === "uncertain");
}

function fillCard(card, m) {
  const st = machineState(m, m.layout);
  card.root.dataset.state = st;
  card.badge.dataset.state = st;
  card.badge.textContent = t(st);
  const noteTag = m.layout.note && m.tags.get(m.layout.note);
  card.note.textContent =
    st === "offline" ? (m.error ?? "") : st === "alarm" && noteTag?.quality !== "bad" ? (noteTag?.value ?? "") : "";
  for (const k of card.keys) showValue(k.value, m.tags.get(k.name));
  const c = m.layout.counter && m.tags.get(m.layout.counter.tag);
  if (c) {
    const label = m.layout.counter.label ? t(m.layout.counter.label) : tagLabel(c.name);
    card.counter.textContent = `${c.quality !== "bad" ? formatValue(c.value) : "—"}${c.unit ? ` ${c.unit}` : ""} ${label}`;
  }
  card.seen.textContent = t("last_seen", { t: ago(m.lastSeen) });
  if (card.oee) fillOee(card.oee, m);
}

// ---------------------------------------------------------------- machine page

function isNumeric(tag) {
  return typeof tag.value === "number" || (tag.value == null && tag.unit != null);
}

function buildMachinePage(m) {
  const badge = el("span", { class: "badge" });
  const note = el("p", { class: "note" });
  const select = el("select", { "aria-label": t("window") });
  for (const n of WINDOWS_MIN) {
    select.append(el("option", { value: String(n), selected: n === model.windowMin }, `${n} min`));
  }
  select.onchange = () => {
    model.windowMin = Number(select.value);
    openMachine(m.id).catch(() => {});
  };
  const rows = new Map();
  const body = el("tbody");
  for (const tag of m.tags.values()) {
    const value = el("td", { class: "num", "data-tag": tag.name });
    const quality = el("td");
    const time = el("td");
    rows.set(tag.name, { value, quality, time });
    body.append(el("tr", {}, el("td", {}, tagLabel(tag.name)), value, el("td", {}, tag.unit ?? ""), quality, time));
  }
  const table = el(
    "table",
    { class: "tags" },
    el("thead", {}, el("tr", {}, ...["tag", "value", "unit", "quality", "time"].map((k) => el("th", {}, t(k))))),
    body,
  );
  const charts = new Map();
  const grid = el("section", { class: "charts" });
  for (const tag of m.tags.values()) {
    if (!isNumeric(tag)) continue;
    const canvas = el("canvas", { "data-tag": tag.name });
    charts.set(tag.name, canvas);
    grid.append(el("div", { class: "chart" }, el("h3", {}, `${tagLabel(tag.name)}${tag.unit ? ` (${tag.unit})` : ""}`), canvas));
  }
  const root = el(
    "section",
    { class: "machine", "data-machine": m.id },
    el(
      "div",
      { class: "machine-head" },
      el("a", { href: "#/", class: "back" }, t("back")),
      el("h1", {}, m.id),
      el("span", { class: "kind" }, `${m.kind} · ${m.protocol}`),
      badge,
      el("span", { class: "spacer" }),
      el("label", {}, `${t("window")} `, select),
    ),
    note,
    el("div", { class: "machine-body" }, table, grid),
  );
  const kpi = m.tags.has("kpi_oee") ? el("section", { class: "kpi-panel", "data-kpi-panel": m.id }) : null;
  if (kpi) root.insertBefore(kpi, root.querySelector(".machine-body"));
  const page = { id: m.id, root, badge, note, rows, charts, kpi };
  fillPage(page, m);
  return page;
}

/** Fetches a machine's KPI breakdown for its page. */
async function loadKpi(id) {
  const m = model.machines.get(id);
  if (!m || !m.tags.has("kpi_oee")) return;
  try {
    m.kpi = await getJson(`api/machines/${encodeURIComponent(id)}/kpi`);
  } catch {
    m.kpi = null; // none yet (the first interval has not passed)
  }
  model.dirty.add(id);
}

/** One column of the KPI panel: the big figures, then the breakdown. */
function kpiColumn(title, b) {
  const row = (label, value) => el("tr", {}, el("th", {}, t(label)), el("td", { class: "num" }, value));
  const kwh = (v) => (typeof v === "number" ? `${formatValue(v)} kWh` : "—");
  const rows = [
    row("availability", formatPercent(b.availability)),
    row("performance", formatPercent(b.performance)),
    row("quality", formatPercent(b.quality)),
    row("known_time", formatSeconds(b.known_s)),
    row("planned_time", formatSeconds(b.planned_s)),
    row("running_time", formatSeconds(b.running_s)),
    row("planned_stop_time", formatSeconds(b.planned_stop_s)),
    row("good_parts", formatValue(b.good)),
    row("reject_parts", formatValue(b.reject)),
  ];
  if (b.energy_kwh > 0 || b.energy_per_part_kwh != null) {
    rows.push(row("energy_used", kwh(b.energy_kwh)));
    rows.push(row("energy_per_part", kwh(b.energy_per_part_kwh)));
  }
  if (b.co2_per_part_kg != null) rows.push(row("co2_per_part", `${formatValue(b.co2_per_part_kg)} kg`));
  return el(
    "div",
    { class: "kpi-column" },
    el("h3", {}, title),
    el("p", { class: "oee-figure", "data-kpi": "oee" }, `${t("oee")} ${formatPercent(b.oee)}`),
    el("table", { class: "kpi-table" }, el("tbody", {}, ...rows)),
  );
}

function fillKpi(panel, k) {
  if (!k) {
    panel.replaceChildren(el("h2", {}, t("kpi_title")), el("p", { class: "empty" }, t("kpi_none")));
    return;
  }
  const hours = k.window_s >= 3600 ? `${formatValue(k.window_s / 3600)} h` : `${formatValue(k.window_s / 60)} min`;
  const columns = [kpiColumn(t("kpi_window", { n: hours }), k)];
  if (k.shift) {
    const since = new Date(k.shift.start_ms).toLocaleTimeString(language() === "nl" ? "nl-NL" : "en-GB", {
      hour: "2-digit",
      minute: "2-digit",
    });
    columns.push(kpiColumn(t("kpi_shift", { t: since }), k.shift));
  }
  panel.replaceChildren(el("h2", {}, t("kpi_title")), el("div", { class: "kpi-columns" }, ...columns));
}

async function openMachine(id) {
  const m = model.machines.get(id);
  if (!m) return;
  const keep = model.windowMin * 60 * 1000;
  const jobs = [];
  for (const tag of m.tags.values()) {
    if (!isNumeric(tag)) continue;
    const isSpark = tag.name === m.layout.spark;
    if (!tag.series || !isSpark) tag.series = new Series(Math.max(keep, isSpark ? SPARK_MS : 0));
    tag.series.keepMs = Math.max(keep, isSpark ? SPARK_MS : 0);
    const series = tag.series;
    jobs.push(
      getJson(`api/machines/${encodeURIComponent(id)}/history?tag=${tag.name}&seconds=${keep / 1000}`)
        .then((points) => series.load(points))
        .catch(() => {}),
    );
  }
  jobs.push(loadKpi(id));
  await Promise.all(jobs);
  model.dirty.add(id);
  schedule();
}

function closeMachine(id) {
  const m = model.machines.get(id);
  if (!m) return;
  // Only the sparkline's series lives on; the others would grow for nothing.
  for (const tag of m.tags.values()) {
    if (tag.name !== m.layout.spark) tag.series = null;
    else tag.series.keepMs = SPARK_MS;
  }
}

function fillPage(page, m) {
  const st = machineState(m, m.layout);
  page.badge.dataset.state = st;
  page.badge.textContent = t(st);
  page.note.textContent = st === "offline" ? (m.error ?? "") : "";
  if (page.kpi && page.kpiShown !== m.kpi) {
    page.kpiShown = m.kpi;
    fillKpi(page.kpi, m.kpi);
  }
  for (const [name, row] of page.rows) {
    const tag = m.tags.get(name);
    showValue(row.value, tag);
    row.quality.textContent = tag.quality ? t(tag.quality) : "";
    row.quality.className = tag.quality === "good" ? "" : (tag.quality ?? "");
    row.time.textContent = tag.ts ? new Date(tag.ts).toLocaleTimeString(language() === "nl" ? "nl-NL" : "en-GB") : "";
  }
}

// ---------------------------------------------------------------- drawing

let frameQueued = false;
let lastCharts = 0;

function schedule() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(frame);
}

function frame(now) {
  frameQueued = false;
  const t0 = performance.now();
  stats.frames++;
  if (model.structureChanged) {
    model.structureChanged = false;
    renderStructure();
    model.dirty = new Set(model.order);
  }
  const chartsDue = now - lastCharts >= CHART_REDRAW_MS;
  if (view.kind === "hall") {
    for (const id of model.dirty) {
      const card = view.cards.get(id);
      if (card) fillCard(card, model.machines.get(id));
    }
    if (chartsDue) {
      for (const [id, card] of view.cards) {
        const m = model.machines.get(id);
        const tag = m.layout.spark && m.tags.get(m.layout.spark);
        if (tag?.series) draw(card.spark, tag.series, SPARK_MS, { color: "#5aa9ff" });
      }
    }
  } else if (view.page) {
    const m = model.machines.get(view.page.id);
    if (m && model.dirty.has(m.id)) fillPage(view.page, m);
    if (m && chartsDue) {
      for (const [name, canvas] of view.page.charts) {
        const tag = m.tags.get(name);
        if (tag?.series) draw(canvas, tag.series, model.windowMin * 60 * 1000, { axes: true });
      }
    }
  }
  if (chartsDue) lastCharts = now;
  model.dirty.clear();
  const spent = performance.now() - t0;
  stats.renderMsTotal += spent;
  stats.renderMsMax = Math.max(stats.renderMsMax, spent);
}

function onRoute() {
  for (const id of model.order) if (id !== route().machine) closeMachine(id);
  model.structureChanged = true;
  if (route().machine) openMachine(route().machine).catch(() => {});
  schedule();
}

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleTimeString(language() === "nl" ? "nl-NL" : "en-GB");
  const online = [...model.machines.values()].filter((m) => machineState(m, m.layout) !== "offline").length;
  document.getElementById("summary").textContent = t("machines_online", { n: online, m: model.order.length });
  // Time moves even when no sample arrives: "seen … ago" and the charts' right edge.
  for (const id of model.order) model.dirty.add(id);
  schedule();
}

function applyLanguage() {
  document.documentElement.lang = language();
  document.getElementById("lang").textContent = language() === "nl" ? "EN" : "NL";
  for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  setConn(document.getElementById("conn").dataset.state);
  model.structureChanged = true;
  tick();
}

async function start() {
  document.getElementById("lang").onclick = () => {
    setLanguage(language() === "nl" ? "en" : "nl");
    applyLanguage();
  };
  applyLanguage();
  window.addEventListener("hashchange", onRoute);
  getJson("health")
    .then((h) => {
      if (h.gateway) document.getElementById("gateway").textContent = h.gateway;
    })
    .catch(() => {});
  for (;;) {
    try {
      await resync(true);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  connect();
  setInterval(tick, 1000);
  setInterval(() => resync().catch(() => {}), STATE_POLL_MS);
}

start();
