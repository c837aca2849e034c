// Deliveries: each outbound delivery's state and last attempt, filtered by subscription and
// status, with a retry button. Refreshes itself while open.

import { get, post } from './api.js';
import { h, field, select, pill, fmtTime, fmtMs, toast, busy, cell, poller } from './dom.js';

const REFRESH_MS = 3000;
const STATUSES = ['pending', 'in_flight', 'paused', 'succeeded', 'failed', 'skipped_echo'];
const RETRYABLE = new Set(['failed', 'succeeded', 'pending', 'paused']);
const COLUMNS = [
  { label: 'Status' },
  { label: 'Created' },
  { label: 'Subscription' },
  { label: 'Event type' },
  { label: 'Attempts', cls: 'num opt' },
  { label: 'Response', cls: 'num' },
  { label: 'Error', cls: 'opt' },
  { label: 'Next attempt', cls: 'opt' },
  { label: '', cls: 'actions' },
];

/** Response times are whole milliseconds: 0 means under one. */
const responseTime = (ms) => (ms === 0 ? '<1 ms' : ms < 1000 ? `${ms} ms` : fmtMs(ms));

export function mount(root, ctx) {
  let names = new Map();
  let open = null;
  const params = ctx.params();
  const filters = { subscription: params.get('subscription') || '', status: params.get('status') || '' };

  const subSelect = select([['', 'All subscriptions']], filters.subscription,
    { onchange: (e) => { filters.subscription = e.target.value; refresh(); } });
  const statusSelect = select([['', 'Any status'], ...STATUSES.map((s) => [s, s.replace('_', ' ')])],
    filters.status, { onchange: (e) => { filters.status = e.target.value; refresh(); } });
  const summary = h('div', { class: 'sub' }, 'Loading…');
  const body = h('tbody');
  const empty = h('div', { class: 'empty', hidden: true }, 'No deliveries match.');
  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h2', null, 'Deliveries'), summary)),
    h('div', { class: 'card toolbar' }, field('Subscription', subSelect), field('Status', statusSelect)),
    h('div', { class: 'card table-wrap' },
      h('table', { class: 'stack compact', 'data-testid': 'deliveries' },
        h('thead', null, h('tr', null, COLUMNS.map((c) => h('th', { class: c.cls }, c.label)))), body),
      empty),
  );

  const poll = poller(async () => {
    const data = await get('deliveries', { ...filters, company: ctx.company() });
    render(data.deliveries);
  }, REFRESH_MS, (e) => { summary.textContent = `Could not load: ${e.message}`; });
  const refresh = () => poll.now();

  // Names for the subscription column and filter first, then the deliveries.
  get('subscriptions', { company: ctx.company() }).then((data) => {
    names = new Map(data.subscriptions.map((s) => [s.id, s.name]));
    for (const s of data.subscriptions) subSelect.append(h('option', { value: s.id }, s.name));
    subSelect.value = filters.subscription;
  }).catch(() => {}).finally(refresh);

  function render(list) {
    const failed = list.filter((d) => d.status === 'failed').length;
    summary.textContent = `${list.length} shown, newest first${failed ? ` · ${failed} failed` : ''}`;
    const rows = [];
    for (const d of list) {
      rows.push(row(d));
      if (open === d.id) rows.push(detailRow(d));
    }
    body.replaceChildren(...rows);
    empty.hidden = list.length > 0;
  }

  function row(d) {
    const retry = RETRYABLE.has(d.status)
      ? h('button', { type: 'button', class: 'small', 'data-action': 'retry' }, 'Retry') : null;
    if (retry) {
      retry.addEventListener('click', (event) => {
        event.stopPropagation();
        busy(retry, async () => {
          await post(`deliveries/${encodeURIComponent(d.id)}/retry`);
          toast(`Delivery ${d.id} queued again`);
          await refresh();
        });
      });
    }
    const tr = h('tr', { class: `clickable${open === d.id ? ' selected' : ''}`, dataset: { id: d.id, status: d.status } },
      cell(COLUMNS[0], pill(d.status.replace('_', ' '), d.status)),
      cell(COLUMNS[1], h('span', { title: d.created_at }, fmtTime(d.created_at))),
      cell(COLUMNS[2], names.get(d.subscription_id) || d.subscription_id),
      cell(COLUMNS[3], h('span', { class: 'mono' }, d.event_type)),
      cell(COLUMNS[4], String(d.attempts)),
      cell(COLUMNS[5], d.response_code ? `${d.response_code} · ${responseTime(d.response_time_ms)}` : '–'),
      cell(COLUMNS[6], d.error || '–'),
      cell(COLUMNS[7], d.next_attempt_at && d.status === 'pending' ? fmtTime(d.next_attempt_at) : '–'),
      cell(COLUMNS[8], retry));
    tr.addEventListener('click', () => {
      open = open === d.id ? null : d.id;
      refresh();
    });
    return tr;
  }

  function detailRow(d) {
    const fields = [
      ['Delivery id', d.id], ['Event id', d.event_id], ['Record id', d.record_id],
      ['Subscription', `${names.get(d.subscription_id) || ''} (${d.subscription_id})`],
      ['Attempts', String(d.attempts)],
      ['Last answer', d.response_code ? `HTTP ${d.response_code} in ${responseTime(d.response_time_ms)}` : 'none yet'],
      ['Last error', d.error || 'none'], ['Updated', fmtTime(d.updated_at)],
    ];
    return h('tr', { class: 'detail-row' }, h('td', { colspan: String(COLUMNS.length) },
      h('div', { class: 'detail' },
        h('dl', { class: 'fields' }, fields.map(([n, v]) => [h('dt', null, n), h('dd', { class: 'mono' }, v)])),
        h('div', { class: 'placeholder' },
          h('p', null, 'Attempt history (each attempt\'s time, answer and error) will be listed here; the row above shows the last attempt.')))));
  }

  return poll.stop;
}
