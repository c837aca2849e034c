// The console's shell: sign-in, the company picker (admin), and the router between pages.
// Each page module exports `mount(root, ctx)` and returns a function that stops it.

import { get, post, setCsrf, onSignedOut } from './api.js';
import { h, toast } from './dom.js';
import * as log from './log.js';
import * as subscriptions from './subscriptions.js';
import * as deliveries from './deliveries.js';
import * as keys from './keys.js';
import * as charts from './charts.js';

const PAGES = { log, subscriptions, deliveries, keys, charts };

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  company: '',
  keys: null,
  stop: null,
};

/** What every page may use. */
const ctx = {
  isAdmin: () => state.session && state.session.role === 'admin',
  session: () => state.session,
  /** The company filter: a key's own company is enforced by the server anyway. */
  company: () => state.company,
  params: () => new URLSearchParams(location.hash.split('?')[1] || ''),
  go(page, params) {
    const q = new URLSearchParams(params || {}).toString();
    location.hash = `#/${page}${q ? `?${q}` : ''}`;
  },
  /** The keys the session may see (cached; `fresh` reloads). */
  async keys(fresh) {
    if (!state.keys || fresh) {
      const data = await get('keys', { company: state.company });
      state.keys = data.keys;
    }
    return state.keys;
  },
  keyLabel(id) {
    if (!id) return '–';
    const key = (state.keys || []).find((k) => k.key_id === id);
    return key ? key.name : id;
  },
};

function showLogin(message) {
  stopPage();
  state.session = null;
  setCsrf('');
  $('shell').hidden = true;
  $('login').hidden = false;
  const error = $('login-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('credential').focus();
}

function signedIn(data) {
  setCsrf(data.csrf_token);
  state.session = data.session;
  state.keys = null;
  const who = $('who');
  const picker = $('company');
  if (data.session.role === 'admin') {
    who.textContent = 'admin';
    picker.replaceChildren(h('option', { value: '' }, 'All companies'),
      ...(data.companies || []).map((c) => h('option', { value: c.id }, c.name)));
    picker.value = state.company;
    picker.hidden = false;
  } else {
    who.textContent = `${data.session.company} · ${data.session.key_name}`;
    who.title = `key ${data.session.key_id}`;
    picker.hidden = true;
    state.company = '';
  }
  $('login').hidden = true;
  $('shell').hidden = false;
  route();
}

function stopPage() {
  if (state.stop) {
    state.stop();
    state.stop = null;
  }
}

function route() {
  if (!state.session) return;
  const name = (location.hash.replace(/^#\/?/, '').split('?')[0]) || 'log';
  const page = PAGES[name] ? name : 'log';
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.view === page);
    if (a.dataset.view === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  stopPage();
  const root = $('view');
  root.replaceChildren();
  root.dataset.page = page;
  state.stop = PAGES[page].mount(root, ctx) || null;
}

async function boot() {
  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = event.submitter || $('login-form').querySelector('button');
    button.disabled = true;
    try {
      const data = await post('login', { credential: $('credential').value });
      $('credential').value = '';
      signedIn(data);
    } catch (e) {
      showLogin(e.message);
    } finally {
      button.disabled = false;
    }
  });
  $('logout').addEventListener('click', async () => {
    try {
      await post('logout');
    } catch (e) {
      if (e.status !== 401) toast(e.message, 'bad');
    }
    showLogin();
  });
  $('company').addEventListener('change', (event) => {
    state.company = event.target.value;
    state.keys = null;
    route();
  });
  window.addEventListener('hashchange', route);
  try {
    signedIn(await get('session'));
  } catch (e) {
    showLogin(e.status === 401 ? '' : e.message);
  }
  // Registered after the first check: a first visit is not an ended session.
  onSignedOut(() => showLogin('Your session has ended; sign in again.'));
}

boot();
