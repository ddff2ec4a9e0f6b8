// What a card shows for a kind of machine: the state tag and its codes, the key values, the
// counter and the sparkline. Kinds not listed here get a card built from their tag names.

const KINDS = {
  cnc: {
    state: { tag: "state", codes: { 0: "setup", 1: "idle", 2: "running", 3: "alarm", 4: "maintenance" } },
    keys: ["spindle_speed", "spindle_load", "feed_rate", "power"],
    counter: { tag: "part_count", label: "parts" },
    spark: "power",
    note: "alarm_text",
  },
  "injection-moulding": {
    state: { tag: "state", codes: { 0: "heating", 1: "running", 2: "alarm" } },
    keys: ["mould_temperature", "peak_pressure", "cycle_time", "cushion"],
    counter: { tag: "shot_count", label: "shots" },
    spark: "injection_pressure",
  },
  "energy-meter": {
    keys: ["power_total", "voltage_l1", "current_l1", "frequency"],
    counter: { tag: "energy_import", label: "energy" },
    spark: "power_total",
  },
};

const STATE_TAGS = ["state", "machine_state", "status", "mode"];
const WORDS = [
  [/run|auto|produc/i, "running"],
  [/idle|ready|stop|wait/i, "idle"],
  [/alarm|error|fault|emerg/i, "alarm"],
  [/setup|set-up|maint|heat/i, "setup"],
];

/** The card layout of a machine, from its kind and its tags (a list of {name, unit}). */
export function layout(kind, tags) {
  const known = KINDS[kind];
  const names = new Set(tags.map((t) => t.name));
  if (known) {
    return {
      ...known,
      keys: known.keys.filter((k) => names.has(k)),
      spark: names.has(known.spark) ? known.spark : known.keys.find((k) => names.has(k)),
    };
  }
  const stateTag = STATE_TAGS.find((n) => names.has(n));
  const counter = tags.find((t) => /(count|counter|total)$/.test(t.name));
  const keys = tags
    .filter((t) => t.name !== stateTag && t !== counter && !/alarm|text|name/.test(t.name))
    .slice(0, 4)
    .map((t) => t.name);
  return {
    state: stateTag ? { tag: stateTag } : undefined,
    keys,
    counter: counter ? { tag: counter.name } : undefined,
    spark: keys[0],
  };
}

/** The state to show: offline wins, then an active alarm, then what the state tag says. */
export function machineState(m, lay) {
  if (m.state !== "online") return "offline";
  // A machine that stops answering sends one bad sample per tag, at once: seen here before the
  // next status poll says so.
  let allBad = m.tags.size > 0;
  for (const tag of m.tags.values()) if (tag.quality !== "bad") { allBad = false; break; }
  if (allBad) return "offline";
  if (m.tags.get("alarm_active")?.value === true) return "alarm";
  const st = lay.state && m.tags.get(lay.state.tag);
  if (st && st.quality !== "bad" && st.value != null) {
    if (lay.state.codes && lay.state.codes[st.value]) return lay.state.codes[st.value];
    if (typeof st.value === "string") {
      for (const [re, s] of WORDS) if (re.test(st.value)) return s;
    }
  }
  return "online";
}
