// API keys: create, rotate the signing secret, revoke. A new secret is shown once, here.

import { get, post } from './api.js';
import { h, field, pill, fmtTime, toast, busy, confirmButton, table, cell } from './dom.js';

const COLUMNS = [
  { label: 'Name' },
  { label: 'Company' },
  { label: 'Key id (X-API-Key)' },
  { label: 'Created', cls: 'opt' },
  { label: 'Status' },
  { label: '', cls: 'actions' },
];

export function mount(root, ctx) {
  let alive = true;
  const admin = ctx.isAdmin();
  const secrets = h('div', { 'data-testid': 'secret-panel-slot' });
  const listSlot = h('div');
  const name = h('input', { type: 'text', placeholder: 'e.g. erp', required: true, maxlength: '100' });
  const company = h('input', {
    type: 'text', placeholder: 'company name', required: true, maxlength: '100', list: 'companies',
  });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { class: `card create-key${admin ? '' : ' own'}` },
    admin ? field('Company', company) : null, field('Integration name', name), create,
    h('datalist', { id: 'companies' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      const body = { name: name.value };
      if (admin) body.company = company.value;
      const data = await post('keys', body);
      name.value = '';
      showSecrets(`Key ${data.key.name} created for ${data.key.company}`, [
        ['X-API-Key', data.key.key_id],
        ['Signing secret', data.key.secret],
        ['REST API token', data.key.api_token],
      ]);
      await refresh();
    });
  });

  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h2', null, 'API keys'),
        h('div', { class: 'sub' }, admin ? 'Every company\'s keys.' : `The keys of ${ctx.session().company}.`))),
    form, secrets, listSlot);

  function showSecrets(title, rows) {
    const panel = h('section', { class: 'card secret-panel', 'data-testid': 'secret-panel' },
      h('h3', null, title),
      h('p', { class: 'warning' }, 'Copy these now: they are shown once and cannot be shown again.'),
      rows.map(([label, value]) => h('div', { class: 'secret-row' },
        h('span', { class: 'label' }, label),
        h('div', { class: 'secret-value' }, h('code', { dataset: { secret: label } }, value),
          copyButton(value)))),
      h('div', null, h('button', { type: 'button', class: 'small', onclick: () => panel.remove() },
        'I have saved them')));
    secrets.replaceChildren(panel);
    panel.scrollIntoView({ block: 'nearest' });
  }

  function copyButton(value) {
    const button = h('button', { type: 'button', class: 'small' }, 'Copy');
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(value);
        toast('Copied');
      } catch {
        toast('Copying is not allowed here; select the text instead', 'bad');
      }
    });
    return button;
  }

  async function refresh() {
    let keys;
    try {
      keys = await ctx.keys(true);
    } catch (e) {
      if (e.status !== 401) listSlot.replaceChildren(h('p', null, `Could not load: ${e.message}`));
      return;
    }
    if (!alive) return;
    const companies = [...new Set(keys.map((k) => k.company))];
    form.querySelector('datalist').replaceChildren(...companies.map((c) => h('option', { value: c })));
    listSlot.replaceChildren(table(COLUMNS, keys.map(row), 'No keys yet.'));
  }

  function row(k) {
    const mine = ctx.session().key_id === k.key_id;
    let status = k.revoked ? pill('revoked', 'revoked') : pill('active', 'active');
    if (!k.revoked && k.previous_secret_valid_until) {
      status = h('span', null, status, h('div', { class: 'cell-sub' },
        `previous secret verifies until ${fmtTime(k.previous_secret_valid_until, { seconds: false })}`));
    }
    const actions = [];
    if (!k.revoked) {
      const rotate = h('button', { type: 'button', class: 'small', 'data-action': 'rotate' }, 'Rotate secret');
      rotate.addEventListener('click', () => busy(rotate, async () => {
        const data = await post(`keys/${encodeURIComponent(k.key_id)}/rotate`);
        showSecrets(`New signing secret for ${k.name}`, [['Signing secret', data.secret]]);
        toast(`The previous secret keeps verifying until ${fmtTime(data.previous_secret_valid_until)}`);
        await refresh();
      }));
      const revoke = confirmButton('Revoke', mine ? 'Revoke (signs you out)' : 'Really revoke?', (button) => busy(button, async () => {
        await post(`keys/${encodeURIComponent(k.key_id)}/revoke`);
        toast(`Key ${k.name} revoked`);
        await refresh();
      }), { 'data-action': 'revoke' });
      actions.push(rotate, revoke);
    }
    return h('tr', { dataset: { id: k.key_id } },
      cell(COLUMNS[0], h('span', { class: 'cell-main' }, k.name, mine ? ' (you)' : '')),
      cell(COLUMNS[1], k.company),
      cell(COLUMNS[2], h('code', { class: 'mono' }, k.key_id)),
      cell(COLUMNS[3], fmtTime(k.created_at, { seconds: false })),
      cell(COLUMNS[4], status),
      cell(COLUMNS[5], actions));
  }

  refresh();
  return () => { alive = false; };
}
