// Dutch and English labels. Tag names are the machine's own; the common ones of the simulated
// hall get a translation, the rest are shown as written (underscores as spaces).

const LABELS = {
  en: {
    hall: "Hall", online: "online", offline: "offline", running: "running", idle: "idle",
    alarm: "alarm", setup: "setup", maintenance: "maintenance", heating: "heating",
    connecting: "connecting", live: "live", reconnecting: "reconnecting",
    machines_online: "{n} of {m} machines online", last_seen: "seen {t}", never: "no data yet",
    ago_s: "{n} s ago", ago_m: "{n} min ago", ago_h: "{n} h ago", now: "just now",
    tag: "Tag", value: "Value", unit: "Unit", quality: "Quality", time: "Time",
    good: "good", uncertain: "uncertain", bad: "bad", window: "Window", back: "← Hall",
    no_machines: "No machines in this gateway's config.", unknown_machine: "No machine {id} here.",
    parts: "parts", shots: "shots", energy: "energy", charts: "Charts",
    loading: "Loading the hall…",
    oee: "OEE", availability: "Availability", performance: "Performance", quality: "Quality",
    kpi_title: "Production KPIs", kpi_window: "Last {n}", kpi_shift: "This shift (since {t})",
    known_time: "Known time", planned_time: "Planned time", running_time: "Running",
    planned_stop_time: "Planned stops", good_parts: "Good parts", reject_parts: "Rejects",
    energy_used: "Energy used", energy_per_part: "Energy per part", co2_per_part: "CO₂ per part",
    kpi_none: "No KPIs yet",
  },
  nl: {
    hall: "Hal", online: "online", offline: "offline", running: "produceert", idle: "stilstand",
    alarm: "storing", setup: "omstellen", maintenance: "onderhoud", heating: "opwarmen",
    connecting: "verbinden", live: "live", reconnecting: "opnieuw verbinden",
    machines_online: "{n} van {m} machines online", last_seen: "gezien {t}", never: "nog geen data",
    ago_s: "{n} s geleden", ago_m: "{n} min geleden", ago_h: "{n} u geleden", now: "zojuist",
    tag: "Tag", value: "Waarde", unit: "Eenheid", quality: "Kwaliteit", time: "Tijd",
    good: "goed", uncertain: "onzeker", bad: "slecht", window: "Venster", back: "← Hal",
    no_machines: "Geen machines in de config van deze gateway.", unknown_machine: "Machine {id} bestaat hier niet.",
    parts: "stuks", shots: "schoten", energy: "energie", charts: "Grafieken",
    loading: "De hal wordt geladen…",
    oee: "OEE", availability: "Beschikbaarheid", performance: "Prestatie", quality: "Kwaliteit",
    kpi_title: "Productie-KPI's", kpi_window: "Laatste {n}", kpi_shift: "Deze ploeg (sinds {t})",
    known_time: "Bekende tijd", planned_time: "Geplande tijd", running_time: "Produceert",
    planned_stop_time: "Geplande stops", good_parts: "Goede stuks", reject_parts: "Afkeur",
    energy_used: "Energieverbruik", energy_per_part: "Energie per stuk", co2_per_part: "CO₂ per stuk",
    kpi_none: "Nog geen KPI's",
  },
};

const TAGS_NL = {
  spindle_speed: "spiltoerental", spindle_load: "spilbelasting", feed_rate: "voeding",
  feed_override: "voedingsoverride", power: "vermogen", part_count: "stuks", good_count: "goed",
  scrap_count: "afkeur", cycle_time: "cyclustijd", tool_wear: "gereedschapsslijtage",
  active_tool: "gereedschap", program_name: "programma", alarm_text: "storing",
  mould_temperature: "matrijstemperatuur", peak_pressure: "piekdruk",
  injection_pressure: "inspuitdruk", screw_position: "schroefpositie", cushion: "restmassa",
  shot_count: "schoten", reject_count: "afkeur", material: "materiaal",
  power_total: "vermogen totaal", voltage_l1: "spanning L1", voltage_l2: "spanning L2",
  voltage_l3: "spanning L3", current_l1: "stroom L1", current_l2: "stroom L2",
  current_l3: "stroom L3", frequency: "frequentie", power_factor: "arbeidsfactor",
  energy_import: "energie",
  kpi_oee: "OEE", kpi_availability: "beschikbaarheid", kpi_performance: "prestatie",
  kpi_quality: "kwaliteit", kpi_good: "goede stuks", kpi_reject: "afkeur",
  kpi_energy_per_part_kwh: "energie per stuk", kpi_co2_per_part_kg: "CO₂ per stuk",
};

let lang = pick();

function pick() {
  const saved = globalThis.localStorage?.getItem("shopfloor.lang");
  if (saved === "nl" || saved === "en") return saved;
  return (navigator.language || "en").toLowerCase().startsWith("nl") ? "nl" : "en";
}

/** The current language, "en" or "nl". */
export function language() { return lang; }

/** Switches language and remembers the choice. */
export function setLanguage(l) {
  lang = l === "nl" ? "nl" : "en";
  try { localStorage.setItem("shopfloor.lang", lang); } catch { /* private mode */ }
  document.documentElement.lang = lang;
}

/** A label, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const s = LABELS[lang][key] ?? LABELS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

/** A tag's name for people. */
export function tagLabel(name) {
  const nl = lang === "nl" ? TAGS_NL[name] : undefined;
  const s = nl ?? name.replaceAll("_", " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "12 s ago" for a UTC millisecond timestamp. */
export function ago(ms, now = Date.now()) {
  if (ms == null) return t("never");
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return t("now");
  if (s < 120) return t("ago_s", { n: s });
  if (s < 7200) return t("ago_m", { n: Math.round(s / 60) });
  return t("ago_h", { n: Math.round(s / 3600) });
}

/** A fraction (0.734) as a percentage for a display ("73 %"). */
export function formatPercent(v) {
  if (typeof v !== "number") return "—";
  return `${(v * 100).toLocaleString(lang === "nl" ? "nl-NL" : "en-GB", { maximumFractionDigits: 0 })}\u00a0%`;
}

/** A duration in seconds as "1 h 05 min" or "4 min 10 s". */
export function formatSeconds(s) {
  if (typeof s !== "number") return "—";
  const r = Math.round(s);
  const h = Math.floor(r / 3600);
  const m = Math.floor((r % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  return `${m} min ${String(r % 60).padStart(2, "0")} s`;
}

/** A number for a display: few digits, grouped the local way. */
export function formatValue(v) {
  if (v == null) return "—";
  if (typeof v === "boolean") return v ? "✔" : "✘";
  if (typeof v === "number") {
    const a = Math.abs(v);
    const digits = Number.isInteger(v) ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : 2;
    return v.toLocaleString(lang === "nl" ? "nl-NL" : "en-GB", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }
  return String(v);
}
