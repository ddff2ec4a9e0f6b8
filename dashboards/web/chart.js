// Time series kept in the page and drawn on canvases. A bad sample is stored as a null and
// drawn as a gap, never as zero. Drawing costs one pass over the points in the window, with
// the points that fall on one pixel column folded into their min and max.

/** Points of one tag, oldest first, bounded by age. */
export class Series {
  constructor(keepMs) {
    this.keepMs = keepMs;
    this.t = [];
    this.v = [];
    this.start = 0; // index of the oldest kept point; compacted now and then, not per push
  }

  push(t, v) {
    const n = this.t.length;
    if (n > this.start && t < this.t[n - 1]) return; // out of order: the stream restarted
    this.t.push(t);
    this.v.push(typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : null);
    const oldest = t - this.keepMs;
    while (this.start < this.t.length && this.t[this.start] < oldest) this.start++;
    if (this.start > 4096 && this.start * 2 > this.t.length) {
      this.t = this.t.slice(this.start);
      this.v = this.v.slice(this.start);
      this.start = 0;
    }
  }

  /** Replaces the content with history from the API: [{timestamp_ms, value}]. */
  load(points) {
    this.t = [];
    this.v = [];
    this.start = 0;
    for (const p of points) this.push(p.timestamp_ms, p.value);
  }

  get length() { return this.t.length - this.start; }
}

function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  return { w, h, dpr };
}

function columns(series, from, to, w) {
  const span = Math.max(1, to - from);
  const cols = [];
  let cur = null;
  // A value holds until the next one: OPC UA machines report changes only, so a steady value
  // has one old point, and is still the value now.
  let held = null;
  let last = null;
  const point = (x, v) => ({ x, min: v, max: v, first: v, last: v });
  for (let i = series.start; i < series.t.length; i++) {
    const t = series.t[i];
    const v = series.v[i];
    last = v;
    if (t < from) {
      held = v;
      continue;
    }
    if (held !== null) {
      cur = point(0, held);
      held = null;
    }
    const x = Math.min(w - 1, Math.floor(((t - from) / span) * (w - 1)));
    if (v === null) {
      if (cur) cols.push(cur);
      cols.push(null); // a gap
      cur = null;
      continue;
    }
    if (cur && cur.x === x) {
      cur.min = Math.min(cur.min, v);
      cur.max = Math.max(cur.max, v);
      cur.last = v;
    } else {
      if (cur) cols.push(cur);
      cur = point(x, v);
    }
  }
  if (held !== null) cur = point(0, held);
  if (cur) cols.push(cur);
  if (last !== null && cur && cur.x < w - 1) cols.push(point(w - 1, last));
  return cols;
}

/** Draws `series` over the last `windowMs` on `canvas`; `axes` adds the scale and time labels. */
export function draw(canvas, series, windowMs, { color = "#5aa9ff", axes = false, now = Date.now() } = {}) {
  const { w, h, dpr } = fit(canvas);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const from = now - windowMs;
  const pad = axes ? Math.round(1.1 * rootPx() * dpr) : Math.round(2 * dpr);
  const cols = columns(series, from, now, w);
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of cols) {
    if (!c) continue;
    lo = Math.min(lo, c.min);
    hi = Math.max(hi, c.max);
  }
  if (lo === Infinity) return;
  if (hi - lo < 1e-9) {
    hi += 1;
    lo -= 1;
  }
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, 2 * dpr);
  ctx.lineJoin = "round";
  ctx.beginPath();
  let pen = false;
  let held = null;
  for (const c of cols) {
    if (!c) {
      pen = false;
      continue;
    }
    if (!pen) ctx.moveTo(c.x, y(c.first));
    else {
      // A value holds until the next one (report by exception sends changes only): a step,
      // not a diagonal across the time between two readings.
      ctx.lineTo(c.x, y(held));
      ctx.lineTo(c.x, y(c.first));
    }
    if (c.min !== c.max) {
      ctx.lineTo(c.x, y(c.min));
      ctx.lineTo(c.x, y(c.max));
    }
    ctx.lineTo(c.x, y(c.last));
    held = c.last;
    pen = true;
  }
  ctx.stroke();
  if (axes) {
    ctx.fillStyle = "#a9b2bf";
    ctx.font = `${Math.round(0.8 * rootPx() * dpr)}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(label(hi), 2, 0);
    ctx.textBaseline = "bottom";
    ctx.fillText(label(lo), 2, h);
    ctx.textAlign = "right";
    ctx.fillText(`−${Math.round(windowMs / 60000)} min`, w - 2, h);
  }
}

let rem = 0;
function rootPx() {
  if (!rem) rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  return rem;
}

function label(v) {
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}
