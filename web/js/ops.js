// The operations map page: wires the API, the live feed, the map and the station panel.

import { takeToken, setToken, clearToken, api, openEvents, AuthError } from './api.js';
import { Network } from './stations.js';
import { MapView } from './map.js';
import { StationPanel } from './panel.js';
import { ForecastLayer } from './forecast.js';
import { UnitsLayer } from './units.js';
import { el, nameLines, directionLabel, STATES, total, formatEnergy, fmtInt } from './names.js';

const $ = (id) => document.getElementById(id);

const net = new Network();
let map;
let panel;
let forecast;
let units;
let events = null;
let summary = null;
let started = false;
const hidden = new Set();

// ---------------------------------------------------------------- token

function askToken(message) {
  const dialog = $('token-dialog');
  $('token-error').textContent = message || '';
  if (!dialog.open) dialog.showModal();
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (e) => {
  const value = $('token-input').value.trim();
  if (!value) { e.preventDefault(); return; }
  setToken(value);
  $('token-input').value = '';
  start();
});

function failed(e) {
  if (e instanceof AuthError) {
    clearToken();
    events?.close();
    events = null;
    started = false;
    setLive('bad', 'no token');
    askToken('That token was not accepted. Check it and try again.');
    return;
  }
  console.warn('chargeops:', e);
}

// ---------------------------------------------------------------- live status

function setLive(cls, text) {
  const live = $('live');
  live.className = `live ${cls}`;
  live.querySelector('.label').textContent = text;
}

// ---------------------------------------------------------------- loading

async function loadStations() {
  const list = await api('/stations');
  net.load(list);
  map.setStations(net.stations.values());
  map.update(net.stations.values());
  $('t-stations').textContent = fmtInt.format(list.length);
}

async function loadSummary() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  summary = await api(`/network/summary?since=${encodeURIComponent(midnight.toISOString())}`);
  $('t-connected').textContent = fmtInt.format(summary.chargers_connected);
  $('t-chargers').textContent = `/ ${fmtInt.format(summary.chargers)}`;
  $('t-energy').textContent = formatEnergy(summary.energy_today_wh);
  $('t-energy').title = `${fmtInt.format(summary.sessions_today)} sessions since ${midnight.toLocaleTimeString()}${summary.energy_capped ? ' (capped)' : ''}`;
}

async function loadGeo() {
  const get = (f) => fetch(`/assets/geo/${f}`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  const [outline, prefectures, highways] = await Promise.all([
    get('hunan.geojson'), get('hunan-prefectures.geojson'), get('hunan-highways.geojson')]);
  map.setGeo(outline, highways, prefectures);
}

let reloadTimer = 0;
function reloadSoon(ms = 400) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadStations().catch(failed), ms);
}

// Chargers connecting or leaving move whole stations' counts; re-read those stations.
const staleStations = new Set();
let staleTimer = 0;
function refreshStation(id) {
  staleStations.add(id);
  if (staleTimer) return;
  staleTimer = setTimeout(async () => {
    staleTimer = 0;
    const ids = [...staleStations];
    staleStations.clear();
    if (ids.length > 25) { reloadSoon(0); return; }
    for (const sid of ids) {
      try { net.put(await api(`/stations/${encodeURIComponent(sid)}`)); } catch (e) { failed(e); }
    }
  }, 250);
}

let summaryTimer = 0;
function summarySoon() {
  if (summaryTimer) return;
  summaryTimer = setTimeout(() => { summaryTimer = 0; loadSummary().catch(failed); }, 3000);
}

// ---------------------------------------------------------------- rendering

function renderTotals() {
  const { connectors: c, states } = net.totals();
  $('t-charging').textContent = fmtInt.format(c.charging);
  $('t-free').textContent = fmtInt.format(c.available);
  $('t-faulted').textContent = fmtInt.format(c.faulted);
  $('t-offline').textContent = fmtInt.format(c.offline);
  for (const [k] of STATES) {
    const n = $('legend').querySelector(`[data-state="${k}"] .n`);
    if (n) n.textContent = fmtInt.format(states[k]);
  }
}

function buildLegend() {
  $('legend').replaceChildren(...STATES.map(([k, label, help]) =>
    el('button', { type: 'button', 'data-state': k, 'aria-pressed': 'true', title: help,
      onclick: (e) => {
        const b = e.currentTarget;
        const on = b.getAttribute('aria-pressed') !== 'true';
        b.setAttribute('aria-pressed', String(on));
        if (on) hidden.delete(k); else hidden.add(k);
        $('map').classList.toggle(`hide-${k}`, !on);
      } },
    el('span', { class: 'sw', style: `background:var(--${k === 'empty' ? 'empty' : k})` }),
    label, el('span', { class: 'n', text: '0' }))));
}

const ATTENTION_RANK = { full: 0, fault: 1, offline: 2 };
let attentionDue = 0;
function renderAttentionSoon() {
  // At most about once a second: a list that reorders under the cursor is hard to use.
  if (attentionDue) return;
  attentionDue = setTimeout(() => { attentionDue = 0; renderAttention(); }, 1000);
}

function renderAttention() {
  const list = [...net.stations.values()]
    .filter((s) => s.state in ATTENTION_RANK || s.connectors.faulted > 0)
    .sort((a, b) => (ATTENTION_RANK[a.state] ?? 3) - (ATTENTION_RANK[b.state] ?? 3)
      || (b.waiting || 0) - (a.waiting || 0)
      || (b.connectors.occupied + b.connectors.charging) - (a.connectors.occupied + a.connectors.charging)
      || a.name.localeCompare(b.name));
  $('attention-count').textContent = list.length;
  $('attention-list').replaceChildren(...list.slice(0, 40).map((s) => {
    const [zh, latin] = nameLines(s.name);
    const c = s.connectors;
    const why = s.state === 'full' && s.waiting > 0 ? `${s.waiting} waiting`
      : s.state === 'full' ? `${c.occupied + c.charging}/${total(c)} busy`
      : s.state === 'fault' ? 'out of service'
      : s.state === 'offline' ? 'offline'
      : `${c.faulted} faulted`;
    return el('li', {}, el('button', { type: 'button', onclick: () => select(s.id, { center: true }) },
      el('span', { class: 'sw', style: `background:var(--${s.state === 'empty' ? 'empty' : s.connectors.faulted && s.state !== 'full' ? 'fault' : s.state})` }),
      el('span', { class: 'name', title: latin }, zh || latin, el('small', { text: [s.highway, s.direction].filter(Boolean).join(' ') })),
      el('span', { class: 'why', text: why })));
  }));
}

net.onChange((ids) => {
  const changed = [];
  for (const id of ids) {
    const s = net.stations.get(id);
    if (s) changed.push(s);
  }
  map.update(changed);
  renderTotals();
  renderAttentionSoon();
  if (panel.openId && ids.has(panel.openId)) {
    const s = net.stations.get(panel.openId);
    if (s) panel.update(s);
  }
});

// ---------------------------------------------------------------- selection

function select(id, { center = false } = {}) {
  const s = net.stations.get(id);
  if (!s) return;
  map.select(id);
  if (center) map.centerOn(id);
  panel.open(s);
  // On a phone the panel is a sheet over the bottom of the map: keep the station above it.
  const sheet = $('panel');
  if (getComputedStyle(sheet).position === 'absolute') map.ensureVisible(id, sheet.offsetHeight);
  history.replaceState(null, '', `#station=${encodeURIComponent(id)}`);
}

// ---------------------------------------------------------------- search

function bindSearch() {
  const input = $('station-search');
  const list = $('search-results');
  let results = [];
  let active = -1;
  const norm = (t) => (t || '').toLowerCase().replace(/\s+/g, '');
  const show = () => {
    const q = norm(input.value);
    if (!q) { list.hidden = true; input.setAttribute('aria-expanded', 'false'); return; }
    results = [...net.stations.values()]
      .filter((s) => norm(s.name).includes(q) || norm(s.id).includes(q) || norm(s.highway) === q)
      .slice(0, 12);
    active = results.length ? 0 : -1;
    list.replaceChildren(...results.map((s, i) => {
      const [zh, latin] = nameLines(s.name);
      return el('li', { role: 'option', id: `sr-${i}`, 'aria-selected': String(i === active),
        onmousedown: (e) => { e.preventDefault(); pick(i); } },
        el('span', { class: 'sw', style: `display:inline-block;width:9px;height:9px;border-radius:50%;background:var(--${s.state})` }),
        el('span', {}, zh || latin, ' ', el('span', { class: 'sub', text: [latin && zh ? latin : '', s.highway, directionLabel(s.direction)].filter(Boolean).join(' · ') })));
    }));
    list.hidden = !results.length;
    input.setAttribute('aria-expanded', String(!list.hidden));
    input.setAttribute('aria-activedescendant', active >= 0 ? `sr-${active}` : '');
  };
  const pick = (i) => {
    const s = results[i];
    if (!s) return;
    input.value = '';
    show();
    select(s.id, { center: true });
  };
  input.addEventListener('input', show);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!results.length) return;
      active = (active + (e.key === 'ArrowDown' ? 1 : -1) + results.length) % results.length;
      [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
      input.setAttribute('aria-activedescendant', `sr-${active}`);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      pick(active);
    } else if (e.key === 'Escape') {
      input.value = '';
      show();
    }
  });
  input.addEventListener('blur', () => { list.hidden = true; input.setAttribute('aria-expanded', 'false'); });
}

// ---------------------------------------------------------------- live feed

function connectEvents() {
  events?.close();
  let wasOpen = false;
  events = openEvents({
    status_changed: (ev) => {
      if (!net.applyStatus(ev)) { reloadSoon(); return; }
      if (panel.openId === ev.station_id) panel.applyStatus(ev);
    },
    charger_online: (ev) => {
      refreshStation(ev.station_id);
      if (panel.openId === ev.station_id) panel.chargerChanged();
      summarySoon();
    },
    charger_offline: (ev) => {
      refreshStation(ev.station_id);
      if (panel.openId === ev.station_id) panel.chargerChanged();
      summarySoon();
    },
    queue_changed: (ev) => {
      if (!net.applyQueue(ev)) return;
      if (panel.openId === ev.station_id) panel.update(net.stations.get(ev.station_id));
      renderAttentionSoon();
    },
    session_started: (ev) => { if (panel.openId === ev.station_id) panel.sessionChanged(); },
    session_stopped: (ev) => {
      if (panel.openId === ev.station_id) panel.sessionChanged();
      summarySoon();
    },
    units_planned: () => units.reloadSoon(),
    unit_moved: (ev) => units.moved(ev),
    lagged: () => { reloadSoon(0); units.reloadSoon(); },
  }, async (state) => {
    if (state === 'open') {
      setLive('ok', 'live');
      // Anything that happened while the feed was down was missed: read it all again.
      if (wasOpen) reloadSoon(0);
      wasOpen = true;
    } else if (state === 'retrying') {
      setLive('bad', 'reconnecting…');
    } else {
      setLive('bad', 'feed closed');
      // A refused token closes the feed for good; find out whether that is why.
      try { await api('/map/config'); setTimeout(connectEvents, 5000); } catch (e) { failed(e); }
    }
  });
}

// ---------------------------------------------------------------- start

async function start() {
  if (started) return;
  started = true;
  try {
    const config = await api('/map/config');
    $('token-dialog').close();
    map.setTiles(config.tile_url);
    if (config.tile_url) {
      const credit = el('div', { class: 'tiles-credit', text: `tiles: ${new URL(config.tile_url.replace(/\{[a-z]\}/g, '0')).host}` });
      $('map').after(credit);
    }
    await Promise.all([loadGeo(), loadStations(), loadSummary()]);
    renderAttention();
    connectEvents();
    forecast.load();
    units.load();
    const m = location.hash.match(/station=([^&]+)/);
    if (m) select(decodeURIComponent(m[1]), { center: true });
    // A slow safety net: re-read everything now and then in case an event was lost.
    setInterval(() => loadStations().catch(failed), 60_000);
    setInterval(() => loadSummary().catch(failed), 30_000);
    document.body.dataset.ready = 'true';
  } catch (e) {
    started = false;
    failed(e);
    if (!(e instanceof AuthError)) {
      setLive('bad', 'server unreachable');
      setTimeout(start, 5000);
    }
  }
}

function init() {
  map = new MapView($('map'), { onSelect: (id) => select(id), tooltip: $('tooltip') });
  map.fitPadding = () => (window.innerWidth > 860 ? { left: 300, right: 60, top: 20, bottom: 70 } : { left: 0, right: 0, top: 56, bottom: 60 });
  panel = new StationPanel($('panel'), {
    onClose: (id) => {
      map.select(null);
      history.replaceState(null, '', location.pathname);
      map.focusMarker(id);
    },
    onError: failed,
  });
  forecast = new ForecastLayer({
    root: $('forecast'), map, stations: net.stations, onError: failed,
    onSelect: (id) => select(id, { center: true }),
  });
  units = new UnitsLayer({ map, onSelect: (id) => select(id, { center: true }), onError: failed });
  buildLegend();
  bindSearch();
  $('zoom-in').addEventListener('click', () => map.zoomBy(1.5));
  $('zoom-out').addEventListener('click', () => map.zoomBy(1 / 1.5));
  $('zoom-fit').addEventListener('click', () => map.fit());
  const toggle = document.querySelector('.attention-toggle');
  toggle.addEventListener('click', () => toggle.setAttribute('aria-expanded', String(toggle.getAttribute('aria-expanded') !== 'true')));
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && document.activeElement?.tagName !== 'INPUT') { e.preventDefault(); $('station-search').focus(); }
  });
  if (takeToken()) start();
  else askToken();
}

init();
