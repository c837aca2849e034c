// The live ingest log: the newest entries, then every new one as it is written (a long poll
// that the server holds until something arrives), with filters and a detail panel.

import { get, post } from './api.js';
import { h, field, select, pill, fmtTime, fmtDateTime, fmtMs, sleep, cell, busy, toast } from './dom.js';

const MAX_ROWS = 500;
const SOURCES = ['custom', 'square', 'quickbooks', 'dynamics365', 'zapier'];
const STATUSES = [
  ['', 'Any status'], ['2xx', '2xx accepted'], ['4xx', '4xx rejected'], ['5xx', '5xx failed'],
  ['400', '400 invalid'], ['401', '401 unauthenticated'], ['403', '403 signature'],
  ['404', '404 not found'], ['409', '409 conflict'], ['413', '413 too large'],
  ['422', '422 rule'], ['429', '429 rate limited'],
];
const COLUMNS = [
  { label: 'Time' },
  { label: 'Status' },
  { label: 'Event type' },
  { label: 'Source', cls: 'opt' },
  { label: 'Key' },
  { label: 'Latency', cls: 'num opt' },
  { label: 'Error' },
];

/** What an answer's status means, in words. */
export function outcome(status) {
  if (status >= 200 && status < 300) return ['accepted', 'ok'];
  if (status === 429) return ['rate limited', 'limited'];
  if (status === 401) return ['not authenticated', 'warn'];
  if (status === 403) return ['signature refused', 'warn'];
  if (status === 413) return ['body too large', 'warn'];
  if (status === 404 || status === 409 || status === 422) return ['refused by a business rule', 'warn'];
  if (status >= 400 && status < 500) return ['rejected', 'warn'];
  return ['server error', 'bad'];
}

/** A kept body as the API gives it: JSON (pretty), text, or base64. */
function bodyText(body) {
  if (!body) return '';
  if (body.json !== undefined) return JSON.stringify(body.json, null, 2);
  if (body.text !== undefined) return body.text;
  return `base64: ${body.base64}`;
}

export function mount(root, ctx) {
  let alive = true;
  let generation = 0;
  let controller = null;
  let paused = false;
  let selected = null;
  const params = ctx.params();
  const filters = {
    key: params.get('key') || '',
    source: params.get('source') || '',
    status: params.get('status') || '',
    event_type: params.get('event_type') || '',
  };
  const entries = new Map();
  const seenTypes = new Set();
  let cursor = null;

  const liveBadge = h('span', { class: 'live', 'data-testid': 'live-state' }, 'Connecting…');
  const pauseButton = h('button', { type: 'button', class: 'small', onclick: togglePause }, 'Pause');
  const keySelect = select([['', 'Any key']], filters.key, { onchange: (e) => setFilter('key', e.target.value) });
  const sourceSelect = select([['', 'Any source'], ...SOURCES.map((s) => [s, s])], filters.source,
    { onchange: (e) => setFilter('source', e.target.value) });
  const statusSelect = select(STATUSES, filters.status, { onchange: (e) => setFilter('status', e.target.value) });
  const typeList = h('datalist', { id: 'event-types' });
  const typeInput = h('input', {
    type: 'search', list: 'event-types', placeholder: 'e.g. project.created', value: filters.event_type,
    spellcheck: 'false',
  });
  typeInput.addEventListener('change', () => setFilter('event_type', typeInput.value.trim()));

  const body = h('tbody');
  const emptyRow = h('div', { class: 'empty' }, 'Waiting for requests…');
  const list = h('div', { class: 'card table-wrap' },
    h('table', { class: 'stack compact', 'data-testid': 'ingest-log' },
      h('thead', null, h('tr', null, COLUMNS.map((c) => h('th', { class: c.cls }, c.label)))), body),
    emptyRow);
  const detail = h('div', { class: 'card detail-card', hidden: true });

  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h2', null, 'Live ingest log'),
        h('div', { class: 'sub' }, 'Every request to /webhooks/inbound, accepted or not, as it happens.')),
      h('div', { class: 'inline-form' }, liveBadge, pauseButton)),
    h('div', { class: 'card toolbar' },
      field('Key', keySelect), field('Source', sourceSelect), field('Status', statusSelect),
      field('Event type', typeInput), typeList),
    h('div', { class: 'log-layout' }, list, detail),
  );

  ctx.keys().then((keys) => {
    for (const k of keys) keySelect.append(h('option', { value: k.key_id }, `${k.name} (${k.company})`));
    keySelect.value = filters.key;
    for (const [id, entry] of entries) replaceRow(id, entry);
  }).catch(() => {});

  function setLive(kind, text) {
    liveBadge.className = `live ${kind}`;
    liveBadge.textContent = text;
  }

  function togglePause() {
    paused = !paused;
    pauseButton.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      if (controller) controller.abort();
      setLive('', 'Paused');
    } else {
      generation += 1;
      loop(generation);
    }
  }

  function setFilter(name, value) {
    if (filters[name] === value) return;
    filters[name] = value;
    restart();
  }

  function restart() {
    generation += 1;
    if (controller) controller.abort();
    entries.clear();
    body.replaceChildren();
    emptyRow.hidden = false;
    emptyRow.textContent = 'Waiting for requests…';
    showDetail(null);
    cursor = null;
    if (!paused) loop(generation);
  }

  function row(entry, fresh) {
    const [word, kind] = outcome(entry.status);
    const tr = h('tr', {
      class: `clickable${fresh ? ' fresh' : ''}${selected === entry.id ? ' selected' : ''}`,
      dataset: { id: String(entry.id), eventType: entry.event_type || '' },
      tabindex: '0',
    },
    cell(COLUMNS[0], h('span', { title: entry.received_at }, fmtTime(entry.received_at))),
    cell(COLUMNS[1], pill(String(entry.status), kind), { title: word }),
    cell(COLUMNS[2], h('span', { class: 'mono' }, entry.event_type || '–')),
    cell(COLUMNS[3], entry.source || '–'),
    cell(COLUMNS[4], ctx.keyLabel(entry.key_id)),
    cell(COLUMNS[5], fmtMs(entry.latency_us / 1000)),
    // An empty error column is left out of the phone layout.
    entry.error_code ? cell(COLUMNS[6], h('span', { class: 'mono' }, entry.error_code))
      : cell(COLUMNS[6], '–', { class: 'opt' }));
    tr.addEventListener('click', () => showDetail(entry));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') showDetail(entry); });
    return tr;
  }

  function replaceRow(id, entry) {
    const old = body.querySelector(`tr[data-id="${id}"]`);
    if (old) old.replaceWith(row(entry, false));
  }

  function add(batch, fresh) {
    // Entries come oldest first; the newest goes on top.
    for (const entry of batch) {
      if (entries.has(entry.id)) continue;
      entries.set(entry.id, entry);
      if (entry.event_type && !seenTypes.has(entry.event_type)) {
        seenTypes.add(entry.event_type);
        typeList.append(h('option', { value: entry.event_type }));
      }
      body.prepend(row(entry, fresh));
    }
    while (entries.size > MAX_ROWS) {
      const oldest = entries.keys().next().value;
      entries.delete(oldest);
      const tr = body.querySelector(`tr[data-id="${oldest}"]`);
      if (tr) tr.remove();
    }
    emptyRow.hidden = entries.size > 0;
  }

  function showDetail(entry) {
    selected = entry ? entry.id : null;
    for (const tr of body.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    if (!entry) {
      detail.hidden = true;
      detail.replaceChildren();
      return;
    }
    const tr = body.querySelector(`tr[data-id="${entry.id}"]`);
    if (tr) tr.classList.add('selected');
    const [word, kind] = outcome(entry.status);
    const fields = [
      ['Received', h('span', { title: entry.received_at }, fmtDateTime(entry.received_at))],
      ['Outcome', h('span', null, pill(String(entry.status), kind), ` ${word}`)],
      ['Error code', entry.error_code ? h('code', null, entry.error_code) : 'none'],
      ['Event type', entry.event_type ? h('code', null, entry.event_type) : 'not read'],
      ['Source', entry.source || '–'],
      ['Key', entry.key_id ? h('span', null, ctx.keyLabel(entry.key_id), h('br'), h('code', null, entry.key_id)) : 'unknown'],
      ['Client', entry.client_addr || '–'],
      ['Latency', fmtMs(entry.latency_us / 1000)],
      ['Event id', entry.event_id ? h('code', null, entry.event_id) : '–'],
      ['Record id', entry.record_id ? h('code', null, entry.record_id) : '–'],
      ['Request id', h('code', null, entry.request_id)],
    ];
    detail.replaceChildren(h('div', { class: 'detail', 'data-testid': 'entry-detail' },
      h('div', { class: 'detail-head' }, h('h3', null, `Request #${entry.id}`),
        h('button', { type: 'button', class: 'ghost small', onclick: () => showDetail(null) }, 'Close')),
      h('dl', { class: 'fields' }, fields.map(([name, value]) => [h('dt', null, name), h('dd', null, value)])),
      keptRequest(entry)));
    detail.hidden = false;
  }

  /** The kept request of an entry (headers redacted, body, answer), loaded when it is opened. */
  function keptRequest(entry) {
    const box = h('div', { class: 'kept', 'data-testid': 'kept-request' },
      h('p', { class: 'muted' }, 'Loading the request…'));
    get(`ingest-log/${encodeURIComponent(entry.id)}`)
      .then((found) => {
        if (selected === entry.id) box.replaceChildren(...keptView(entry, found.data));
      })
      .catch((e) => {
        box.replaceChildren(h('p', { class: 'muted' }, `The request could not be loaded: ${e.message}`));
      });
    return box;
  }

  function keptView(entry, view) {
    if (!view.kept) {
      return [h('p', { class: 'muted', 'data-testid': 'not-kept' }, `Request not kept: ${view.why_not_kept}`)];
    }
    const request = view.request;
    const result = h('p', { class: 'replay-result', 'data-testid': 'replay-result' });
    const replay = h('button', {
      type: 'button', class: 'small', 'data-action': 'replay',
      title: view.replayable ? 'Run this request through the pipeline again' : 'Only part of the body was kept',
    }, 'Replay');
    replay.disabled = !view.replayable;
    replay.addEventListener('click', () => busy(replay, async () => {
      const done = (await post(`ingest-log/${encodeURIComponent(entry.id)}/replay`)).data;
      const [word] = outcome(done.status);
      result.textContent = `Replayed as ${done.request_id}: ${done.status} ${word}`;
      toast(`Request #${entry.id} replayed: ${done.status}`, done.status < 300 ? undefined : 'bad');
    }));
    const headerRows = (request.headers || []).map(([name, value]) =>
      h('tr', null, h('th', { scope: 'row' }, name), h('td', null, value)));
    const notes = [];
    if (request.body_truncated) notes.push(h('p', { class: 'muted' }, `Only the first bytes of ${request.body_bytes} were kept.`));
    if (view.signature_check) notes.push(h('p', { class: 'muted' }, `Signature check ${view.signature_check}.`));
    return [
      h('h4', null, 'Request'),
      h('p', null, h('code', null, `${request.method} ${request.target}`)),
      h('table', { class: 'kv', 'data-testid': 'request-headers' }, h('tbody', null, headerRows)),
      h('pre', { class: 'body', 'data-testid': 'request-body' }, bodyText(request.body)),
      ...notes,
      h('h4', null, `Answer ${view.response.status}`),
      h('pre', { class: 'body' }, bodyText(view.response.body)),
      h('div', { class: 'replay-row' }, replay, result),
    ];
  }

  async function loop(gen) {
    while (alive && gen === generation && !paused) {
      controller = new AbortController();
      const query = { ...filters, company: ctx.company(), limit: 100 };
      if (cursor !== null) {
        query.after_id = cursor;
        query.wait = 25;
      }
      try {
        const data = await get('ingest-log', query, { signal: controller.signal });
        if (gen !== generation || !alive) return;
        add(data.entries, cursor !== null);
        cursor = data.next_after_id;
        setLive('on', 'Live');
      } catch (e) {
        if (!alive || gen !== generation || paused) return;
        if (e.name === 'AbortError') continue;
        if (e.status === 401) return;
        setLive('error', 'Reconnecting…');
        await sleep(2000);
      }
    }
  }

  loop(generation);

  return () => {
    alive = false;
    if (controller) controller.abort();
  };
}
