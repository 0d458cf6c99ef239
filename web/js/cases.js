// What the hotline console, the dispatcher board and the crew page share: authenticated JSON
// calls (reads and writes), the caller's identity, case labels and the timeline.

import { AuthError, ApiError, api, takeToken, token } from './api.js';

export { AuthError, ApiError, api, takeToken };

export async function send(method, path, body) {
  const t = token();
  if (!t) throw new AuthError('no token');
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${t}`, Accept: 'application/json', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (res.status === 401) throw new AuthError('token refused');
  let data = null;
  try { data = await res.json(); } catch { /* no body */ }
  if (!res.ok) throw new ApiError(res.status, data?.code, data?.message);
  return data;
}

export const KIND = {
  faulted: 'Connector faulted', offline: 'Charger offline', stuck_session: 'Stuck session',
  meter_anomaly: 'Meter anomaly', command_failures: 'Commands failing', reboot_loop: 'Reboot loop',
  hotline: 'Hotline report',
};
export const STATE = {
  new: 'New', assigned: 'Assigned', en_route: 'En route', on_site: 'On site',
  resolved: 'Resolved', verified: 'Verified', closed: 'Closed',
};
const PRIO = { high: 0, medium: 1, low: 2 };

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export function stateBadge(state) {
  return el('span', { class: 'state', 'data-state': state, text: STATE[state] || state });
}

export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function slaText(c) {
  if (c.sla_left_min == null) return '–';
  const m = c.sla_left_min;
  const abs = Math.abs(m);
  const t = abs >= 120 ? `${Math.round(abs / 60)} h` : `${abs} min`;
  return m >= 0 ? `${t} left` : `${t} over`;
}

export function byPriority(a, b) {
  return (PRIO[a.priority] ?? 9) - (PRIO[b.priority] ?? 9)
    || (a.sla_left_min ?? 1e9) - (b.sla_left_min ?? 1e9)
    || a.id - b.id;
}

export function timeline(entries) {
  return el('ol', { class: 'timeline' }, entries.map((e) => el('li', { 'data-action': e.action },
    el('div', {}, el('span', { class: 'what', text: e.action.replace(/_/g, ' ') }), ' · ', e.actor),
    e.detail ? el('div', { class: 'sub', text: e.detail }) : null,
    el('div', { class: 'when', text: when(e.at) }))));
}

/** Shows who is signed in; returns the caller (`{name, role, crew_id}`). */
export async function whoAmI(node) {
  const me = await api('/me');
  if (node) node.replaceChildren(el('strong', { text: me.name }), el('br'), me.role + (me.crew_id ? ` · ${me.crew_id}` : ''));
  return me;
}

export function showError(node, e) {
  node.className = 'msg error';
  if (e instanceof AuthError) {
    // Back to this page after signing in.
    const here = location.pathname + location.search;
    const link = el('a', { href: `/login?next=${encodeURIComponent(here)}`, text: 'Sign in' });
    node.replaceChildren('Not signed in, or the sign-in has ended. ', link, ' (or open this page with #token=…)');
    return;
  }
  node.textContent = e.message || String(e);
}

export function showOk(node, text) {
  node.className = 'msg ok';
  node.textContent = text;
}

/** Calls `fn` at most once per `ms`, trailing. */
export function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
