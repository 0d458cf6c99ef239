// The staff desk (tablet): a station's queue with call, skip, re-queue and cancel, and numbers
// handed out without a phone. Needs a staff token (`#token=...`, kept in this tab).

import { takeToken } from './api.js';

const station = new URLSearchParams(location.search).get('station') || '';
const $ = (id) => document.getElementById(id);
const token = takeToken();

async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(json?.message || `HTTP ${r.status}`);
  return json;
}

const minutes = (s) => (s === null || s === undefined ? '' : `${Math.round(s / 60)} min`);

function button(label, cls, fn) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener('click', async () => {
    $('error').textContent = '';
    try {
      await fn();
    } catch (e) {
      $('error').textContent = e.message;
    }
    await refresh();
  });
  return b;
}

async function refresh() {
  try {
    const q = await call('GET', `/api/v1/stations/${encodeURIComponent(station)}/queue`);
    $('summary').textContent = `${q.waiting} waiting · ${q.called} called · ${q.charging} charging · next new number waits ${minutes(q.estimated_wait_s) || '–'}`;
    const rows = q.tickets.map((t) => {
      const tr = document.createElement('tr');
      tr.dataset.state = t.state;
      tr.dataset.number = t.number;
      const cells = [t.number, t.state, t.position ?? '', t.contact ?? '(paper)', minutes(t.estimated_wait_s), t.connector_id ? `${t.charger_id} #${t.connector_id}` : ''];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      const td = document.createElement('td');
      td.className = 'actions';
      const path = `/api/v1/queue/${encodeURIComponent(t.id)}`;
      if (t.state === 'waiting') td.append(button('Call', '', () => call('POST', `${path}/call`)));
      if (t.state === 'waiting' || t.state === 'called') {
        td.append(button('Skip', 'secondary', () => call('POST', `${path}/skip`)));
        td.append(button('Cancel', 'danger', () => call('DELETE', path)));
      }
      if (t.state === 'called') td.append(button('Re-queue', 'secondary', () => call('POST', `${path}/requeue`)));
      tr.append(td);
      return tr;
    });
    $('rows').replaceChildren(...rows);
    document.body.dataset.ready = 'true';
  } catch (e) {
    $('error').textContent = e.message;
  }
}

$('hand-out').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const t = await call('POST', `/api/v1/stations/${encodeURIComponent(station)}/queue`, { contact: $('contact').value });
    $('hand-out-result').textContent = `Number ${t.number} (place ${t.position ?? '-'})`;
    $('contact').value = '';
  } catch (e) {
    $('hand-out-result').textContent = e.message;
  }
  await refresh();
});

$('station-name').textContent = station || 'No station given (?station=ID)';
if (!token) $('error').textContent = 'Open this page with a staff token (#token=...)';
refresh();
setInterval(refresh, 2000);
