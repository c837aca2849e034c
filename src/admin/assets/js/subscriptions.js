// Subscriptions with their health at a glance: status colour, success rate of the recent
// deliveries, the newest error, and the actions the REST API offers.

import { get, post } from './api.js';
import { h, pill, fmtAgo, toast, busy, plural, poller } from './dom.js';

const REFRESH_MS = 5000;

export function mount(root, ctx) {
  const openRecover = new Set();
  const grid = h('div', { class: 'sub-grid', 'data-testid': 'subscriptions' });
  const summary = h('div', { class: 'sub' }, 'Loading…');
  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h2', null, 'Subscriptions'), summary),
      h('div', { class: 'legend' },
        h('span', null, pill('active', 'active'), 'delivering'),
        h('span', null, pill('failing', 'failing'), 'recent failures'),
        h('span', null, pill('disabled', 'disabled'), 'not sending'))),
    grid,
  );

  const poll = poller(async () => {
    const data = await get('subscriptions', { company: ctx.company() });
    // A recovery time being picked is not redrawn under the operator's hands.
    if (openRecover.size === 0) render(data.subscriptions);
  }, REFRESH_MS, (e) => { summary.textContent = `Could not load: ${e.message}`; });

  function render(list) {
    const counts = { active: 0, failing: 0, disabled: 0 };
    for (const s of list) counts[s.status] = (counts[s.status] || 0) + 1;
    summary.textContent = list.length === 0
      ? 'No subscriptions yet: create them with POST /api/v1/webhooks or hookgate webhooks create.'
      : `${list.length} in all · ${counts.active} active · ${counts.failing} failing · ${counts.disabled} disabled`;
    grid.replaceChildren(...list.map(card));
  }

  function act(button, sub, action, body, done) {
    return busy(button, async () => {
      const result = await post(`subscriptions/${encodeURIComponent(sub.id)}/${action}`, body);
      toast(done(result));
      await poll.now();
    });
  }

  function card(sub) {
    const health = sub.health || {};
    const rate = health.success_rate;
    const pct = rate === null || rate === undefined ? null : Math.round(rate * 100);
    const enabled = sub.status !== 'disabled';
    const toggle = h('button', { type: 'button', class: 'small', 'data-action': enabled ? 'disable' : 'enable' },
      enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => act(toggle, sub, enabled ? 'disable' : 'enable', undefined,
      (r) => `${r.name} is now ${r.status}`));
    const test = h('button', { type: 'button', class: 'small', 'data-action': 'test', disabled: !enabled,
      title: enabled ? 'Queue a webhook.test delivery' : 'Enable it first' }, 'Send test');
    test.addEventListener('click', () => act(test, sub, 'test', undefined,
      () => `Test delivery queued for ${sub.name}`));
    const recoverToggle = h('button', { type: 'button', class: 'small', 'data-action': 'recover' }, 'Recover…');
    const recoverForm = recoverFormFor(sub);
    recoverForm.hidden = !openRecover.has(sub.id);
    recoverToggle.addEventListener('click', () => {
      recoverForm.hidden = !recoverForm.hidden;
      if (recoverForm.hidden) openRecover.delete(sub.id); else openRecover.add(sub.id);
    });
    const deliveriesLink = h('button', { type: 'button', class: 'small ghost' }, 'Deliveries →');
    deliveriesLink.addEventListener('click', () => ctx.go('deliveries', { subscription: sub.id }));

    return h('article', { class: `card sub-card ${sub.status}`, dataset: { id: sub.id, name: sub.name } },
      h('div', { class: 'sub-top' },
        h('div', { class: 'sub-title' }, h('h3', null, sub.name), h('div', { class: 'sub-url' }, sub.url)),
        pill(sub.status, sub.status)),
      h('div', { class: 'chips' }, sub.events.map((e) => h('span', { class: 'chip' }, e)),
        sub.projects ? h('span', { class: 'chip' }, `projects: ${sub.projects.join(', ')}`) : null,
        h('span', { class: 'chip' }, `payload: ${sub.payload}`)),
      h('div', { class: 'meter' },
        h('div', { class: `meter-bar${pct === null ? ' none' : ''}` },
          pct === null ? null : meterFill(pct)),
        h('div', { class: 'meter-text' },
          h('span', null, pct === null ? 'No finished deliveries yet'
            : [h('strong', { 'data-testid': 'success-rate' }, `${pct}%`), ` succeeded of the last ${health.succeeded + health.failed}`]),
          h('span', null, `${health.waiting || 0} waiting · ${plural(sub.consecutive_failures, 'consecutive failure')}`))),
      health.last_error ? h('div', { class: 'last-error' },
        `Last error ${fmtAgo(health.last_error.at)}: ${health.last_error.error}`) : null,
      sub.status === 'disabled' && sub.disabled_reason
        ? h('div', { class: 'reason' }, `Disabled: ${sub.disabled_reason}`) : null,
      h('div', { class: 'sub-actions' }, toggle, test, recoverToggle, deliveriesLink),
      recoverForm);
  }

  function meterFill(pct) {
    const fill = h('div', { class: 'meter-fill' });
    // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
    fill.style.width = `${pct}%`;
    return fill;
  }

  function recoverFormFor(sub) {
    const since = h('input', { type: 'datetime-local', 'aria-label': 'Re-send what it missed since' });
    const anHourAgo = new Date(Date.now() - 3600 * 1000);
    anHourAgo.setMinutes(anHourAgo.getMinutes() - anHourAgo.getTimezoneOffset());
    since.value = anHourAgo.toISOString().slice(0, 16);
    const go = h('button', { type: 'button', class: 'small primary' }, 'Queue missed events');
    go.addEventListener('click', () => {
      const when = new Date(since.value);
      if (Number.isNaN(when.getTime())) {
        toast('Pick a time to recover from', 'bad');
        return;
      }
      const iso = `${when.toISOString().slice(0, 19)}Z`;
      openRecover.delete(sub.id);
      act(go, sub, 'recover', { since: iso }, (r) => `${r.queued} missed event(s) queued for ${sub.name}`);
    });
    return h('div', { class: 'inline-form' }, h('span', { class: 'sub' }, 'Re-send since'), since, go);
  }

  poll.now();
  return poll.stop;
}
