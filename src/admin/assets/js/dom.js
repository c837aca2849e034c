// Small DOM helpers. Text always goes in as text nodes (never as HTML), so whatever a sender
// put in an event type or a header cannot become markup.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value') el.value = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

/** A labelled form field. */
export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

/** A <select> with `[value, label]` options. */
export function select(options, value, props) {
  const el = h('select', props);
  for (const [v, label] of options) {
    el.append(h('option', { value: v }, label));
  }
  el.value = value ?? '';
  return el;
}

export function pill(text, kind) {
  return h('span', { class: `pill ${kind || ''}` }, text);
}

/** RFC 3339 → local date and time in full. */
export function fmtDateTime(text) {
  const t = new Date(text);
  return Number.isNaN(t.getTime()) ? String(text) : t.toLocaleString([], { hour12: false });
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** RFC 3339 → local time; the date is added when it is not today. */
export function fmtTime(text, { seconds = true } = {}) {
  if (!text) return '–';
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return text;
  const time = t.toLocaleTimeString([], {
    hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined, hour12: false,
  });
  const today = new Date();
  if (t.toDateString() === today.toDateString()) return time;
  return `${t.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function fmtAgo(text) {
  if (!text) return '';
  const secs = Math.round((Date.now() - new Date(text).getTime()) / 1000);
  if (Number.isNaN(secs)) return '';
  if (secs < 5) return 'just now';
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.round(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms === 0) return '0 ms';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function toast(message, kind) {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind || ''}`, role: 'status' }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'bad' ? 7000 : 3500);
}

/**
 * Runs `load` now and then every `ms` while the browser shows the page (a hidden tab asks the
 * server for nothing). `load` may throw; `onError` shows the failure. Returns `now()` to load
 * at once (after an action) and `stop()`.
 */
export function poller(load, ms, onError) {
  let timer = null;
  let stopped = false;
  async function run() {
    clearTimeout(timer);
    if (!document.hidden) {
      try {
        await load();
      } catch (e) {
        if (!stopped && e.status !== 401 && onError) onError(e);
      }
    }
    if (!stopped) timer = setTimeout(run, ms);
  }
  return {
    now: run,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** A button that asks for a second click before it acts. */
export function confirmButton(label, confirmLabel, action, props) {
  let armed = false;
  let timer = null;
  const button = h('button', { type: 'button', class: 'danger small', ...props }, label);
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add('confirming');
      timer = setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove('confirming');
      }, 4000);
      return;
    }
    clearTimeout(timer);
    await action(button);
  });
  return button;
}

/** Runs `action` with `button` disabled; a failure becomes a red toast. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (e) {
    toast(e.message || String(e), 'bad');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** A stacked table: on narrow screens each cell shows its column label (`data-label`). */
export function table(columns, rows, emptyText) {
  const head = h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.cls }, c.label))));
  const body = h('tbody');
  for (const row of rows) body.append(row);
  const el = h('table', { class: 'stack' }, head, body);
  if (rows.length === 0) {
    return h('div', { class: 'card table-wrap' }, el, h('div', { class: 'empty' }, emptyText));
  }
  return h('div', { class: 'card table-wrap' }, el);
}

export function cell(column, content, extra) {
  return h('td', { 'data-label': column.label, class: column.cls, ...extra }, content);
}
