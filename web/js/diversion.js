// The operations map's diversion counter: suggestions given, how many cars took one, the
// busiest numbered queues and the routes suggested most. Its own module and panel, so the
// map's other layers are untouched; it reads the token the map keeps in this tab.

import { token } from './api.js';

const $ = (id) => document.getElementById(id);

async function refresh() {
  const t = token();
  if (!t) return;
  try {
    const r = await fetch('/api/v1/diversion/stats?hours=24', { headers: { Authorization: `Bearer ${t}` } });
    if (!r.ok) return;
    const s = await r.json();
    $('div-suggested').textContent = s.suggested;
    $('div-taken').textContent = s.taken;
    const items = [
      ...s.queues.slice(0, 3).map((q) => `${q.station_id}: ${q.waiting} waiting, ${q.called} called`),
      ...s.routes.slice(0, 3).map((x) => `${x.from} → ${x.to}: ${x.suggested} suggested`),
    ].map((text) => {
      const li = document.createElement('li');
      li.textContent = text;
      return li;
    });
    $('div-routes').replaceChildren(...items);
    $('diversion-panel').hidden = false;
  } catch {
    // The map shows its own connection state; this panel just stays as it was.
  }
}

refresh();
setInterval(refresh, 10000);
