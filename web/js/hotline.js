// The hotline console: find a station, see its live status and open cases, open a case from a
// call, answer from the FAQ, and follow the case while the caller waits.

import { api, send, el, stateBadge, when, KIND, takeToken, whoAmI, showError, showOk, timeline, throttle } from './cases.js';
import { openEvents } from './api.js';

const $ = (id) => document.getElementById(id);
let stations = [];
let current = null; // selected station
let followed = null; // case id shown in progress

function distanceKm(a, b, c, d) {
  const r = Math.PI / 180;
  const x = Math.sin(((c - a) * r) / 2) ** 2 + Math.cos(a * r) * Math.cos(c * r) * Math.sin(((d - b) * r) / 2) ** 2;
  return 12742 * Math.asin(Math.sqrt(x));
}

function renderStations(list) {
  $('stations').replaceChildren(...list.slice(0, 60).map((s) => el('li', {},
    el('button', { class: 'item', type: 'button', 'data-id': s.id, 'aria-current': current?.id === s.id ? 'true' : null, onclick: () => select(s.id) },
      el('div', { text: s.name }),
      el('div', { class: 'sub', text: [s.highway, s.direction, s._km != null ? `${s._km.toFixed(0)} km` : null, s.id].filter(Boolean).join(' · ') })))));
  if (!list.length) $('stations').replaceChildren(el('li', { class: 'empty', text: 'No station matches.' }));
}

function search() {
  const words = $('station-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  const list = stations.filter((s) => {
    const hay = `${s.name} ${s.id} ${s.highway || ''} ${s.direction || ''}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
  list.forEach((s) => { delete s._km; });
  renderStations(list);
}

function nearby() {
  const lat = Number($('near-lat').value);
  const lon = Number($('near-lon').value);
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || !$('near-lat').value || !$('near-lon').value) return;
  const list = stations.filter((s) => s.lat != null).map((s) => Object.assign(s, { _km: distanceKm(lat, lon, s.lat, s.lon) }));
  list.sort((a, b) => a._km - b._km);
  renderStations(list);
}

async function select(id) {
  current = stations.find((s) => s.id === id);
  document.querySelectorAll('#stations button').forEach((b) => b.setAttribute('aria-current', b.dataset.id === id ? 'true' : 'false'));
  $('station').hidden = false;
  $('call-form').hidden = false;
  $('station').dataset.station = id;
  await refreshStation();
}

async function refreshStation() {
  if (!current) return;
  const id = current.id;
  const [station, chargers, cases] = await Promise.all([
    api(`/stations/${encodeURIComponent(id)}`),
    api(`/chargers?station=${encodeURIComponent(id)}`),
    api(`/cases?station=${encodeURIComponent(id)}&state=open`),
  ]);
  if (current?.id !== id) return;
  $('station-name').textContent = station.name;
  $('station-where').textContent = [station.highway, station.direction, `${station.chargers} chargers`, station.waiting ? `${station.waiting} cars waiting` : null].filter(Boolean).join(' · ');
  $('station-counts').replaceChildren(...Object.entries(station.connectors).filter(([, n]) => n > 0)
    .map(([s, n]) => el('span', { class: 'chip', 'data-status': s, text: `${n} ${s}` })));
  $('chargers').replaceChildren(...chargers.map((c) => el('div', { class: 'sub', 'data-charger': c.id },
    el('strong', { text: c.id }), c.online ? '' : ' (offline)',
    el('div', { class: 'chips' }, c.connectors.map((k) => el('span', { class: 'chip', 'data-status': k.status, text: `#${k.evse_id} ${k.status}${k.error_code ? ` ${k.error_code}` : ''}` }))))));
  const sel = $('charger');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '', text: '— not known —' }), ...chargers.map((c) => el('option', { value: c.id, text: c.id })));
  sel.value = chargers.some((c) => c.id === keep) ? keep : '';
  $('station-cases').replaceChildren(...cases.map((c) => el('li', {},
    el('button', { class: 'item', type: 'button', 'data-case': c.id, onclick: () => follow(c.id) },
      el('div', {}, stateBadge(c.state), ' ', el('span', { text: ` #${c.id} ${KIND[c.kind] || c.kind}` })),
      el('div', { class: 'sub', text: `${c.charger_id || 'station'} · ${c.title}` })))));
  if (!cases.length) $('station-cases').replaceChildren(el('li', { class: 'empty', text: 'No open case.' }));
}

async function follow(id) {
  followed = id;
  $('progress').hidden = false;
  await refreshCase();
}

async function refreshCase() {
  if (followed == null) return;
  const c = await api(`/cases/${followed}`);
  $('progress').dataset.case = c.id;
  $('progress').dataset.state = c.state;
  $('case-title').textContent = `#${c.id} · ${c.title}`;
  $('case-state').replaceChildren(stateBadge(c.state));
  $('case-meta').textContent = [KIND[c.kind] || c.kind, c.crew_id ? `crew ${c.crew_id}` : 'no crew yet', `opened ${when(c.opened_at)}`].join(' · ');
  $('case-timeline').replaceChildren(timeline(c.timeline));
}

async function openCase(ev) {
  ev.preventDefault();
  const msg = $('call-msg');
  const body = {
    station_id: current.id,
    category: $('category').value,
    caller_phone: $('phone').value.trim(),
    description: $('description').value,
  };
  if ($('charger').value) body.charger_id = $('charger').value;
  if ($('connector').value.trim()) body.connector_id = Number($('connector').value);
  $('open-case').disabled = true;
  try {
    const c = await send('POST', '/cases', body);
    showOk(msg, c.merged ? `Joined open case #${c.id} (the charger already reported it).` : `Case #${c.id} opened.`);
    msg.dataset.case = c.id;
    $('description').value = '';
    await Promise.all([follow(c.id), refreshStation()]);
  } catch (e) {
    showError(msg, e);
  } finally {
    $('open-case').disabled = false;
  }
}

async function faq() {
  const entries = await api(`/faq?q=${encodeURIComponent($('faq-q').value)}`);
  $('faq').replaceChildren(...entries.map((e) => el('details', { 'data-faq': e.id },
    el('summary', { text: e.question }), el('p', { text: e.answer }))));
  if (!entries.length) $('faq').replaceChildren(el('p', { class: 'empty', text: 'No answer matches.' }));
}

async function main() {
  takeToken();
  try {
    await whoAmI($('who'));
    stations = await api('/stations');
    stations.sort((a, b) => a.name.localeCompare(b.name));
    search();
    await faq();
  } catch (e) {
    showError($('who'), e);
    return;
  }
  $('station-search').addEventListener('input', search);
  $('near').addEventListener('click', nearby);
  $('faq-q').addEventListener('input', throttle(() => faq().catch(() => {}), 150));
  $('call-form').addEventListener('submit', openCase);
  const refresh = throttle(() => { refreshCase().catch(() => {}); refreshStation().catch(() => {}); }, 500);
  openEvents({ case_changed: refresh, status_changed: (d) => { if (d.station_id === current?.id) refresh(); } }, () => {});
  setInterval(refresh, 5000);
  document.body.dataset.ready = 'true';
}

main();
