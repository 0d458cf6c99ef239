// The API as the operations map uses it: a bearer token kept in this tab's sessionStorage,
// JSON requests, and the live event feed.

const TOKEN_KEY = 'chargeops.token';

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** The token from the URL fragment (`#token=...`, which never reaches the server or the
 *  history), else the one this tab already has. The fragment is removed once read. */
export function takeToken() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl.trim());
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export async function api(path, { signal } = {}) {
  const t = token();
  if (!t) throw new AuthError('no token');
  const res = await fetch(`/api/v1${path}`, {
    headers: { Authorization: `Bearer ${t}`, Accept: 'application/json' },
    signal,
    cache: 'no-store',
  });
  if (res.status === 401) throw new AuthError('token refused');
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, body.code, body.message);
  }
  return res.json();
}

/** Opens the live feed. `handlers` maps SSE event names to functions of the parsed data;
 *  `onState('open' | 'retrying' | 'closed')` follows the connection. EventSource reconnects by
 *  itself; after a reconnect the caller re-reads the full state, since events were missed. */
export function openEvents(handlers, onState) {
  const url = `/api/v1/events?access_token=${encodeURIComponent(token() || '')}`;
  const es = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      fn(data);
    });
  }
  es.addEventListener('open', () => onState('open'));
  es.addEventListener('error', () => onState(es.readyState === EventSource.CLOSED ? 'closed' : 'retrying'));
  return es;
}
