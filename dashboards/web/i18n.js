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
