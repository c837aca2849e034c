// Charts drawn as plain SVG: requests per second by outcome (stacked bars) and delivery lag
// (median and worst per bucket). Redrawn every few seconds and when the page is resized.

import { get } from './api.js';
import { h, svg, field, select, fmtMs, poller } from './dom.js';

const REFRESH_MS = 5000;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 26, left: 46 };
const OUTCOME_LABELS = {
  accepted: 'accepted (2xx)', rejected: 'rejected (4xx)', rate_limited: 'rate limited (429)', error: 'server error (5xx)',
};

/** A round upper bound for an axis, and its tick step. */
export function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return { top: step * Math.ceil(max / step), step };
}

function timeLabel(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

function frame(width, top, step, format, start, end) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const plotW = width - PAD.left - PAD.right;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const parts = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    parts.push(svg('line', { class: 'grid', x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
    parts.push(svg('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  const ticks = width < 480 ? 3 : 6;
  for (let i = 0; i < ticks; i += 1) {
    const t = start + ((end - start) * i) / (ticks - 1);
    const x = PAD.left + (plotW * i) / (ticks - 1);
    const anchor = i === 0 ? 'start' : i === ticks - 1 ? 'end' : 'middle';
    parts.push(svg('text', { x, y: HEIGHT - 8, 'text-anchor': anchor }, timeLabel(t)));
  }
  parts.push(svg('line', { class: 'axis', x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0) }));
  return { parts, y, plotW };
}

function drawRequests(width, data) {
  const { outcomes, per_second: rows } = data.requests;
  const totals = rows.map((r) => r.reduce((a, b) => a + b, 0));
  const { top, step } = niceScale(Math.max(...totals, 0));
  const start = Date.parse(data.start);
  const end = Date.parse(data.end);
  const fmt = (v) => (step < 1 ? v.toFixed(step < 0.5 ? 2 : 1) : String(Math.round(v)));
  const { parts, y, plotW } = frame(width, top, step, fmt, start, end);
  const slot = plotW / rows.length;
  const barW = Math.max(slot - (slot > 3 ? 1 : 0), 0.5);
  rows.forEach((row, i) => {
    let base = 0;
    const x = PAD.left + i * slot;
    row.forEach((value, k) => {
      if (value <= 0) return;
      const y0 = y(base);
      const y1 = y(base + value);
      parts.push(svg('rect', { class: `bar ${outcomes[k]}`, x, y: y1, width: barW, height: Math.max(y0 - y1, 0.5) },
        svg('title', null, `${timeLabel(start + (i * (end - start)) / rows.length)} · ${OUTCOME_LABELS[outcomes[k]]}: ${value}/s`)));
      base += value;
    });
  });
  return svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img',
    'aria-label': 'Requests per second by outcome' }, parts);
}

function drawLag(width, data) {
  const lag = data.delivery_lag;
  const values = [...lag.p50_ms, ...lag.max_ms].filter((v) => v !== null);
  const { top, step } = niceScale(Math.max(...values, 0));
  const start = Date.parse(data.start);
  const end = Date.parse(data.end);
  const { parts, y, plotW } = frame(width, top, step, (v) => (v === 0 ? '0' : fmtMs(v).replace(' ', '')), start, end);
  const n = lag.p50_ms.length;
  const x = (i) => PAD.left + ((i + 0.5) * plotW) / n;
  for (const [series, cls] of [[lag.max_ms, 'max'], [lag.p50_ms, 'p50']]) {
    let path = '';
    let pen = false;
    series.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      path += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      parts.push(svg('circle', { class: `dot ${cls}`, cx: x(i), cy: y(v), r: 2.5 },
        svg('title', null, `${timeLabel(start + (i * (end - start)) / n)} · ${cls === 'p50' ? 'median' : 'worst'}: ${fmtMs(v)}`)));
    });
    if (path) parts.push(svg('path', { class: `line ${cls}`, d: path }));
  }
  return svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img',
    'aria-label': 'Delivery lag' }, parts);
}

export function mount(root, ctx) {
  let last = null;
  const windowSelect = select([['5', 'Last 5 minutes'], ['15', 'Last 15 minutes'], ['60', 'Last hour']], '5',
    { onchange: () => poll.now() });
  const requestsBox = h('div', { class: 'chart', 'data-testid': 'requests-chart' });
  const lagBox = h('div', { class: 'chart', 'data-testid': 'lag-chart' });
  const requestsNote = h('span', { class: 'sub' });
  const lagNote = h('span', { class: 'sub' });
  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h2', null, 'Traffic'),
        h('div', { class: 'sub' }, 'Inbound requests by outcome, and how long changes take to reach subscribers.')),
      field('Window', windowSelect)),
    h('section', { class: 'card chart-card' },
      h('div', { class: 'chart-head' }, h('h3', null, 'Requests per second by outcome'), requestsNote),
      h('div', { class: 'legend' }, Object.entries(OUTCOME_LABELS).map(([k, label]) =>
        h('span', null, h('i', { class: `swatch ${k}` }), label))),
      requestsBox),
    h('section', { class: 'card chart-card' },
      h('div', { class: 'chart-head' }, h('h3', null, 'Delivery lag'), lagNote),
      h('div', { class: 'legend' },
        h('span', null, h('i', { class: 'swatch p50' }), 'median'),
        h('span', null, h('i', { class: 'swatch max' }), 'worst')),
      lagBox),
  );

  function draw() {
    if (!last) return;
    const width = Math.max(requestsBox.clientWidth, 280);
    requestsBox.replaceChildren(drawRequests(width, last));
    lagBox.replaceChildren(drawLag(width, last));
    const r = last.requests;
    requestsNote.textContent = `${r.total} requests · bars of ${r.bucket_secs} s`;
    const l = last.delivery_lag;
    lagNote.textContent = l.deliveries
      ? `${l.deliveries} deliveries · from the change to the receiver's 2xx`
      : 'No successful deliveries in this window';
  }

  const poll = poller(async () => {
    last = await get('stats', { minutes: windowSelect.value, company: ctx.company() });
    draw();
  }, REFRESH_MS, (e) => { requestsNote.textContent = `Could not load: ${e.message}`; });

  const onResize = () => draw();
  window.addEventListener('resize', onResize);
  poll.now();
  return () => {
    poll.stop();
    window.removeEventListener('resize', onResize);
  };
}
