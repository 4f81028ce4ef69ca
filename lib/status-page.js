'use strict';
// pool.statusHandler(): a read-only status page, one self-contained HTML document (no CDN, no
// external font: its Content-Security-Policy allows nothing from elsewhere) that polls the same
// URL with `?format=json` every second and draws what it gets: workers, queue depth and
// throughput over the last five minutes (an SVG chart drawn by the page), wait and run
// percentiles, the last errors and worker exits.
//
// The history behind the chart is kept here, in the parent: one sample a second (the pool's
// settled-job total and queue depth, from one native call), from the first statusHandler() of
// a pool until the pool has shut down; the timer is unref'd and never keeps the process up.

const HISTORY = 300; // samples: five minutes, one a second
const INTERVAL_MS = 1000;

class History {
  /** `sample()` returns `{ queued, done }` (done: jobs settled since the start), or null to stop. */
  constructor(sample) {
    this.sample = sample;
    this.t = [];
    this.queued = [];
    this.throughput = [];
    this.lastT = Date.now();
    this.lastDone = sample()?.done ?? 0;
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
    this.timer.unref();
  }

  tick() {
    const s = this.sample();
    if (s === null) {
      clearInterval(this.timer);
      return;
    }
    const now = Date.now();
    const secs = Math.max(0.001, (now - this.lastT) / 1000);
    this.t.push(now);
    this.queued.push(s.queued);
    this.throughput.push(Math.round(((s.done - this.lastDone) / secs) * 10) / 10);
    this.lastT = now;
    this.lastDone = s.done;
    if (this.t.length > HISTORY) {
      this.t.shift();
      this.queued.shift();
      this.throughput.shift();
    }
  }

  toJSON() {
    return {
      intervalMs: INTERVAL_MS, t: this.t.slice(), queued: this.queued.slice(), throughput: this.throughput.slice(),
    };
  }
}

/** A (req, res) handler over `sources`: `{ snapshot() }` each, as Pool makes them. */
function statusHandler(sources) {
  return function comradeStatus(req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.statusCode = 405;
      res.setHeader('Allow', 'GET, HEAD');
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('the comrade status page is read-only: GET or HEAD\n');
      return;
    }
    const url = typeof req.url === 'string' ? req.url : '';
    const q = url.indexOf('?');
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    let body;
    if (params.get('format') === 'json') {
      body = JSON.stringify({ time: Date.now(), pools: sources.map((s) => s.snapshot()) });
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
    } else {
      body = PAGE;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('Content-Security-Policy', CSP);
    }
    res.statusCode = 200;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}

// Nothing from another origin, no form, no frame: the page only reads its own JSON.
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
  "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

// The page. Everything it shows is set with textContent (error messages come from workers).
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>comrade status</title>
<style>
  :root { color-scheme: light; --fg: #1d232a; --muted: #66707a; --line: #d9dee3; --bg: #f6f7f9;
          --card: #fff; --tp: #2f6fdf; --q: #d9822b; --bad: #c23030; --ok: #1e8a4c; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 16px 20px; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 12px; margin-bottom: 12px; }
  h1 { font-size: 18px; margin: 0; }
  h2 { font-size: 16px; margin: 0 0 8px; }
  h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
  #updated { color: var(--muted); font-size: 12px; }
  #updated.stale { color: var(--bad); }
  section.pool { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; margin-bottom: 16px; }
  .tiles { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 8px; }
  .tile { border: 1px solid var(--line); border-radius: 4px; padding: 4px 10px; min-width: 92px; }
  .tile b { display: block; font-size: 18px; font-variant-numeric: tabular-nums; }
  .tile span { color: var(--muted); font-size: 12px; }
  .grid { display: grid; grid-template-columns: minmax(320px, 2fr) minmax(260px, 1fr); gap: 16px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  td.num, th.num { text-align: right; }
  td.msg { max-width: 520px; overflow-wrap: anywhere; }
  .scroll { max-height: 360px; overflow-y: auto; }
  .state-busy { color: var(--tp); } .state-idle { color: var(--ok); } .state-starting, .state-stopping { color: var(--q); }
  .reason-crash, .reason-protocol, .reason-memory { color: var(--bad); font-weight: 600; }
  svg { width: 100%; height: auto; display: block; }
  .legend { font-size: 12px; color: var(--muted); }
  .legend i { display: inline-block; width: 10px; height: 3px; margin: 0 4px 2px 10px; vertical-align: middle; }
  .empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header><h1>comrade status</h1><span id="updated">loading…</span></header>
<main id="pools"></main>
<script>
'use strict';
const W = 600, H = 150, PAD = 30, SPAN_MS = 300000, MIN_SPAN_MS = 30000;
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k === null || k === undefined ? '' : k);
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
const fmt = (v, d = 0) => (v === null || v === undefined ? '–' : Number(v).toFixed(d));
const ms = (v) => (v === null || v === undefined ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const time = (t) => new Date(t).toLocaleTimeString();
function tile(label, value) { return el('div', { class: 'tile' }, el('b', {}, String(value)), el('span', {}, label)); }
function table(cols, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'empty' }, empty);
  const head = el('tr', {}, ...cols.map((c) => el('th', c.num ? { class: 'num' } : {}, c.label)));
  const body = rows.map((r) => el('tr', {}, ...cols.map((c) => {
    const cell = el('td', c.cls ? { class: c.cls(r) } : c.num ? { class: 'num' } : {}, String(c.get(r)));
    return cell;
  })));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...body));
}

function chart(h, now, index) {
  const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', id: 'chart-' + index,
    'aria-label': 'throughput and queue depth, last 5 minutes', 'data-points': h.t.length });
  svg.append(svgEl('rect', { x: PAD, y: 6, width: W - PAD - 6, height: H - PAD - 6, fill: 'none', stroke: '#d9dee3' }));
  // The last 5 minutes, or less while the history is younger (at least 30 s).
  const span = Math.min(SPAN_MS, Math.max(MIN_SPAN_MS, h.t.length ? now - h.t[0] : 0));
  const x = (t) => PAD + ((t - (now - span)) / span) * (W - PAD - 6);
  const series = [['throughput', h.throughput, '#2f6fdf'], ['queued', h.queued, '#d9822b']];
  const max = Math.max(1, ...h.throughput, ...h.queued);
  const y = (v) => H - PAD - (v / max) * (H - PAD - 12);
  for (const [name, data, color] of series) {
    const pts = [];
    for (let i = 0; i < data.length; i++) {
      if (h.t[i] >= now - span) pts.push(x(h.t[i]).toFixed(1) + ',' + y(data[i]).toFixed(1));
    }
    svg.append(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 1.6,
      class: 'series-' + name, 'data-points': pts.length }));
  }
  const label = (tx, ty, text, anchor) => {
    const t = svgEl('text', { x: tx, y: ty, 'font-size': 10, fill: '#66707a', 'text-anchor': anchor || 'start' });
    t.textContent = text;
    svg.append(t);
  };
  label(PAD - 4, 14, String(Math.round(max)), 'end');
  label(PAD - 4, H - PAD, '0', 'end');
  label(PAD, H - PAD + 14, span >= SPAN_MS ? '−5 min' : '−' + Math.round(span / 1000) + ' s');
  label(W - 6, H - PAD + 14, 'now', 'end');
  return svg;
}

function renderPool(p, now, index) {
  const s = p.stats;
  const sec = el('section', { class: 'pool', 'data-pool': p.name });
  sec.append(el('h2', {}, 'pool ' + p.name));
  sec.append(el('div', { class: 'tiles' },
    tile('queued', s.queued), tile('in flight', s.inFlight), tile('jobs/s (10 s)', fmt(s.throughput, 1)),
    tile('completed', s.completed), tile('errored', s.errored), tile('failed', s.failed),
    tile('timed out', s.timedOut), tile('aborted', s.aborted), tile('rejected', s.rejected), tile('retried', s.retried)));
  const left = el('div', {});
  left.append(el('h3', {}, 'Throughput (jobs/s) and queue depth, last 5 minutes'));
  left.append(el('div', { class: 'legend' }, el('i', { style: 'background:#2f6fdf' }), 'throughput',
    el('i', { style: 'background:#d9822b' }), 'queued'));
  left.append(chart(p.history, now, index));
  left.append(el('h3', {}, 'Workers'));
  left.append(table([
    { label: 'pid', get: (w) => w.pid },
    { label: 'state', get: (w) => w.state, cls: (w) => 'state-' + w.state },
    { label: 'jobs done', get: (w) => w.jobsDone, num: true },
    { label: 'in flight', get: (w) => w.jobsInFlight, num: true },
    { label: 'RSS MiB', get: (w) => (w.rss === null ? '–' : (w.rss / 1048576).toFixed(1)), num: true },
  ], s.workers, 'no worker running'));
  const right = el('div', {});
  right.append(el('h3', {}, 'Percentiles (ms, recent jobs)'));
  const pct = (name, v) => ({ name, p50: v && v.p50, p90: v && v.p90, p99: v && v.p99, n: v ? v.samples : 0 });
  right.append(table([
    { label: '', get: (r) => r.name },
    { label: 'p50', get: (r) => ms(r.p50), num: true },
    { label: 'p90', get: (r) => ms(r.p90), num: true },
    { label: 'p99', get: (r) => ms(r.p99), num: true },
    { label: 'jobs', get: (r) => r.n, num: true },
  ], [pct('wait', s.waitTime), pct('run', s.runTime)], ''));
  right.append(el('h3', {}, 'Worker exits (last 50)'));
  const exits = right.appendChild(table([
    { label: 'time', get: (e) => time(e.time) },
    { label: 'pid', get: (e) => e.pid },
    { label: 'reason', get: (e) => e.reason, cls: (e) => 'reason reason-' + e.reason },
    { label: 'exit', get: (e) => (e.signal ? e.signal : 'code ' + e.code) },
  ], p.exits.slice().reverse(), 'no worker has exited'));
  exits.classList.add('exits');
  const grid = el('div', { class: 'grid' }, left, right);
  sec.append(grid);
  sec.append(el('h3', {}, 'Errors (last 50)'));
  const errors = table([
    { label: 'time', get: (e) => time(e.time) },
    { label: 'function', get: (e) => (e.function === null ? '(default)' : e.function) },
    { label: 'error', get: (e) => (e.code ? e.name + ' ' + e.code : e.name) },
    { label: 'message', get: (e) => e.message, cls: () => 'msg' },
  ], p.errors.slice().reverse(), 'no job has failed');
  errors.classList.add('errors');
  sec.append(el('div', { class: 'scroll' }, errors));
  return sec;
}

async function tick() {
  const updated = document.getElementById('updated');
  try {
    const r = await fetch(location.pathname + '?format=json', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const data = await r.json();
    const main = document.getElementById('pools');
    // Redrawn whole each second; a scrolled error list keeps its place.
    const scrolled = [...main.querySelectorAll('.scroll')].map((d) => d.scrollTop);
    main.replaceChildren(...data.pools.map((p, i) => renderPool(p, data.time, i)));
    main.querySelectorAll('.scroll').forEach((d, i) => { d.scrollTop = scrolled[i] || 0; });
    updated.textContent = 'updated ' + time(data.time);
    updated.className = '';
  } catch (e) {
    updated.textContent = 'cannot reach the pool: ' + e.message;
    updated.className = 'stale';
  }
}
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
`;

module.exports = { statusHandler, History, HISTORY, INTERVAL_MS };
