// The driver's queue page (phone): take a number at a station with a phone or plate, follow
// its position and live wait estimate, see it called, start charging at the reserved connector
// without a card, cancel it; and ask for a shorter wait ahead. No token: the ticket's unguessable id, kept in this browser, is what follows it.

const params = new URLSearchParams(location.search);
const station = params.get('station') || '';
const KEY = `chargeops.ticket.${station}`;
const $ = (id) => document.getElementById(id);

function minutes(s) {
  if (s === null || s === undefined) return '–';
  const m = Math.round(s / 60);
  return m < 1 ? 'now' : `${m} min`;
}

async function call(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw Object.assign(new Error(json?.message || `HTTP ${r.status}`), { status: r.status, code: json?.code });
  return json;
}

const STATE_TEXT = {
  waiting: 'Waiting · 排队中',
  called: 'Your turn! · 请充电',
  charging: 'Charging · 充电中',
  done: 'Done · 已完成',
  cancelled: 'Cancelled · 已取消',
  expired: 'Missed: the number passed on · 已过号',
};

function showTicket(t) {
  $('ticket').hidden = false;
  $('take').hidden = ['waiting', 'called', 'charging'].includes(t.state);
  $('divert').hidden = t.state !== 'waiting';
  $('t-number').textContent = t.number;
  $('t-state').textContent = STATE_TEXT[t.state] || t.state;
  $('t-state').dataset.state = t.state;
  document.body.dataset.ticketState = t.state;
  let detail = '';
  if (t.state === 'waiting') detail = `Place ${t.position} in the queue · about ${minutes(t.estimated_wait_s)}`;
  if (t.state === 'called') {
    const by = t.plug_by ? new Date(t.plug_by).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
    detail = t.connector_id ? `Go to charger ${t.charger_id}, connector ${t.connector_id}${by ? `, plug in by ${by}` : ''}` : 'Please go to the staff desk';
  }
  $('t-detail').textContent = detail;
  // The charger holds the connector for this ticket's own tag: the platform can start it.
  $('start').hidden = !(t.state === 'called' && t.connector_id && t.reservation?.holding);
  if (t.state !== 'called') $('start-msg').textContent = '';
  $('cancel').hidden = !['waiting', 'called'].includes(t.state);
}

async function refreshStation() {
  try {
    const q = await call('GET', `/api/v1/stations/${encodeURIComponent(station)}/queue`);
    $('wait-now').textContent = minutes(q.estimated_wait_s);
    $('queue-now').textContent = `${q.waiting} waiting, ${q.called} called, ${q.charging} charging with a number`;
  } catch (e) {
    $('queue-now').textContent = e.message;
  }
}

async function refreshTicket() {
  const id = localStorage.getItem(KEY);
  if (!id) return;
  try {
    showTicket(await call('GET', `/api/v1/queue/${encodeURIComponent(id)}`));
  } catch (e) {
    if (e.status === 404) localStorage.removeItem(KEY);
  }
}

async function refresh() {
  await Promise.all([refreshStation(), refreshTicket()]);
  document.body.dataset.ready = 'true';
}

$('take-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('take-error').textContent = '';
  try {
    const body = { contact: $('contact').value };
    const from = params.get('from');
    if (from) body.diverted_from = from;
    const t = await call('POST', `/api/v1/stations/${encodeURIComponent(station)}/queue`, body);
    localStorage.setItem(KEY, t.id);
    showTicket(t);
  } catch (e) {
    $('take-error').textContent = e.message;
  }
});

$('start').addEventListener('click', async () => {
  const id = localStorage.getItem(KEY);
  if (!id) return;
  $('start').disabled = true;
  $('start-msg').textContent = 'Starting… plug in the cable if you have not yet · 正在启动';
  try {
    const r = await call('POST', `/api/v1/queue/${encodeURIComponent(id)}/start`);
    $('start-msg').textContent = r.status === 'Accepted'
      ? 'The charger is starting · 充电桩正在启动'
      : `The charger answered ${r.status}: check the cable and try again`;
    await refreshTicket();
  } catch (e) {
    $('start-msg').textContent = e.message;
  } finally {
    $('start').disabled = false;
  }
});

$('cancel').addEventListener('click', async () => {
  const id = localStorage.getItem(KEY);
  if (!id) return;
  try {
    showTicket(await call('DELETE', `/api/v1/queue/${encodeURIComponent(id)}`));
    localStorage.removeItem(KEY);
    $('take').hidden = false;
  } catch (e) {
    $('t-detail').textContent = e.message;
  }
});

$('divert-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const out = $('divert-result');
  out.textContent = '…';
  try {
    const d = await call('GET', `/api/v1/diversion?station=${encodeURIComponent(station)}&range_km=${encodeURIComponent($('range').value)}`);
    if (!d.suggestion) {
      out.textContent = 'Staying here is quickest right now.';
      return;
    }
    const best = d.options.find((o) => o.station_id === d.suggestion.station_id);
    out.textContent = '';
    const p = document.createElement('p');
    p.textContent = `${best.name || best.station_id}: ${best.distance_km} km ${best.kind === 'twin' ? '(opposite side)' : 'ahead'}, about ${minutes(best.wait_s)} wait; saves about ${minutes(d.suggestion.saves_s)}.`;
    const a = document.createElement('a');
    a.href = `/queue?station=${encodeURIComponent(best.station_id)}&from=${encodeURIComponent(station)}`;
    a.textContent = 'Take a number there instead';
    out.append(p, a);
  } catch (e) {
    out.textContent = e.message;
  }
});

async function init() {
  $('card-link').href = `/card?station=${encodeURIComponent(station)}`;
  if (!station) {
    $('station-name').textContent = 'No station given (?station=ID)';
    return;
  }
  try {
    const list = await call('GET', '/api/v1/public/stations');
    $('station-name').textContent = list.find((s) => s.id === station)?.name || station;
  } catch {
    $('station-name').textContent = station;
  }
  await refresh();
  setInterval(refresh, 2000);
}

init();
