// Calls to the console's JSON endpoints under /admin/api/. The session travels in an
// HttpOnly cookie; state-changing calls also carry the session's CSRF token in a header.

let csrfToken = '';
let signedOut = () => {};

export function setCsrf(token) { csrfToken = token || ''; }
export function onSignedOut(handler) { signedOut = handler; }

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== '' && value !== null && value !== undefined) q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

async function call(method, path, body, options) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/admin/api/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal: options && options.signal,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const e = new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || response.statusText || 'request failed', error.details);
    if (response.status === 401 && path !== 'login') signedOut(e);
    throw e;
  }
  return data;
}

export const get = (path, params, options) => call('GET', withQuery(path, params), undefined, options);
export const post = (path, body, options) => call('POST', path, body, options);
