// The station panel: connectors now, busy connectors over the last hours, chargers with
// their connectors, recent sessions. Opened from a marker, the search or the attention list.

import { api } from './api.js';
import { renderChart } from './chart.js';
import {
  el, nameLines, directionLabel, STATUS_ORDER, STATUS_LABEL, STATES, total,
  formatEnergy, formatDuration, formatClock,
} from './names.js';

function shortCharger(chargerId, stationId) {
  return chargerId.startsWith(`${stationId}-`) ? `…${chargerId.slice(stationId.length)}` : chargerId;
}

/** "EVDisconnected" or "ev_disconnected" -> "EV disconnected". */
function humanReason(r) {
  const words = r.replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2').trim();
  return words.split(' ').map((w, i) => (w === w.toUpperCase() ? w : i ? w.toLowerCase() : w[0].toUpperCase() + w.slice(1).toLowerCase())).join(' ');
}

const STATE_LABEL = Object.fromEntries(STATES.map(([k, label]) => [k, label]));

export class StationPanel {
  constructor(root, { onClose, onError }) {
    this.root = root;
    this.onClose = onClose;
    this.onError = onError;
    this.station = null;
    this.hours = 6;
    this.chargers = [];
    this.timers = {};
    this.q = (sel) => root.querySelector(sel);
    this.q('#panel-close').addEventListener('click', () => this.close());
    root.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.close(); });
    for (const b of root.querySelectorAll('.seg button')) {
      b.addEventListener('click', () => {
        this.hours = Number(b.dataset.hours);
        for (const o of root.querySelectorAll('.seg button')) o.setAttribute('aria-pressed', String(o === b));
        this.loadHistory();
      });
    }
    this.refreshTimer = setInterval(() => { if (this.station) this.loadHistory(); }, 60_000);
  }

  get openId() {
    return this.station?.id || null;
  }

  open(station) {
    const same = this.station?.id === station.id;
    this.station = station;
    this.root.hidden = false;
    this.root.dataset.station = station.id;
    const [zh, latin] = nameLines(station.name);
    this.q('#panel-title .zh').textContent = zh;
    this.q('.pinyin').textContent = latin;
    const meta = this.q('.meta');
    meta.replaceChildren(
      station.highway ? el('span', { class: 'chip hw', text: station.highway }) : el('span', { class: 'chip', text: 'Urban' }),
      station.direction ? el('span', { class: 'chip', text: directionLabel(station.direction, { zh: true }) }) : null,
      el('span', { class: 'chip', text: station.id }),
    );
    this.update(station);
    if (!same) {
      this.q('#chargers').replaceChildren(el('li', { class: 'muted', text: 'Loading…' }));
      this.q('#sessions').replaceChildren();
      this.q('#chart').replaceChildren();
    }
    this.loadChargers();
    this.loadSessions();
    this.loadHistory();
    this.loadLotLink();
    this.q('#panel-title').focus({ preventScroll: true });
  }

  close() {
    if (!this.station) return;
    const id = this.station.id;
    this.station = null;
    this.root.hidden = true;
    delete this.root.dataset.station;
    this.onClose(id);
  }

  /** Counts changed (from the event feed). */
  update(station) {
    if (!this.station || station.id !== this.station.id) return;
    this.station = station;
    const c = station.connectors;
    const all = total(c);
    const badge = this.q('.badge');
    badge.className = `badge s-${station.state}`;
    badge.textContent = STATE_LABEL[station.state] || station.state;
    this.q('.free').textContent = `${c.available} of ${all} free`;
    const inUse = c.occupied + c.charging + c.reserved;
    const queued = station.waiting > 0 ? `${station.waiting} car${station.waiting === 1 ? '' : 's'} waiting` : '';
    const wait = c.available > 0 || !inUse ? '' : `≈ ${formatDuration(2400 * ((station.waiting || 0) + 1) / (inUse + 1))} wait`;
    this.q('.wait').textContent = [queued, wait].filter(Boolean).join(' · ');
    const bar = this.q('.bar');
    bar.replaceChildren(...STATUS_ORDER.filter((k) => c[k] > 0).map((k) =>
      el('span', { style: `flex-grow:${c[k]};background:var(--c-${k})`, title: `${STATUS_LABEL[k]}: ${c[k]}` })));
    bar.setAttribute('aria-label', STATUS_ORDER.filter((k) => c[k] > 0).map((k) => `${c[k]} ${STATUS_LABEL[k].toLowerCase()}`).join(', ') || 'no connectors');
    this.q('.bar-legend').replaceChildren(...STATUS_ORDER.filter((k) => c[k] > 0).map((k) =>
      el('li', {}, el('span', { class: 'sw-s', style: `background:var(--c-${k})` }), STATUS_LABEL[k], ' ', el('b', { text: c[k] }))));
  }

  /** A `status_changed` event for a charger of the open station: update its connector chip. */
  applyStatus(ev) {
    const ch = this.chargers.find((c) => c.id === ev.charger_id);
    if (!ch) { this.debounce('chargers', () => this.loadChargers(), 300); return; }
    const conn = ch.connectors.find((k) => k.evse_id === ev.evse_id && k.connector_id === ev.connector_id);
    if (conn) { conn.status = ev.status; conn.error_code = ev.error_code; conn.updated_at = ev.at; }
    else ch.connectors.push({ evse_id: ev.evse_id, connector_id: ev.connector_id, status: ev.status, error_code: ev.error_code, updated_at: ev.at });
    this.debounce('render', () => this.renderChargers(), 0);
  }

  chargerChanged() {
    this.debounce('chargers', () => this.loadChargers(), 300);
  }

  sessionChanged() {
    this.debounce('sessions', () => this.loadSessions(), 500);
  }

  debounce(key, fn, ms) {
    clearTimeout(this.timers[key]);
    this.timers[key] = setTimeout(fn, ms);
  }

  async loadChargers() {
    const id = this.station?.id;
    if (!id) return;
    try {
      const list = await api(`/chargers?station=${encodeURIComponent(id)}`);
      if (this.station?.id !== id) return;
      this.chargers = list;
      this.renderChargers();
    } catch (e) { this.onError(e); }
  }

  renderChargers() {
    const ul = this.q('#chargers');
    if (!this.chargers.length) {
      ul.replaceChildren(el('li', { class: 'muted', text: 'No chargers registered' }));
      return;
    }
    const sorted = [...this.chargers].sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
    ul.replaceChildren(...sorted.map((c) => {
      const about = [c.vendor, c.model, c.protocol && `OCPP ${c.protocol.replace(/^ocpp/, '')}`].filter(Boolean).join(' · ');
      const conns = [...c.connectors].sort((a, b) => a.evse_id - b.evse_id || a.connector_id - b.connector_id);
      return el('li', { class: 'charger', 'data-charger': c.id },
        el('div', { class: 'charger-head' },
          el('span', {}, el('span', { class: `online-dot${c.online ? ' on' : ''}`, title: c.online ? 'connected' : 'not connected' }),
            el('span', { class: 'id', text: c.id }), el('span', { class: 'visually-hidden', text: c.online ? ' connected' : ' not connected' })),
          el('span', { class: 'about', text: about })),
        el('ul', { class: 'connectors', 'aria-label': `Connectors of ${c.id}` },
          conns.length
            ? conns.map((k) => el('li', {
                class: 'conn', 'data-status': k.status, 'data-connector': `${k.evse_id}/${k.connector_id}`,
                title: `since ${formatClock(k.updated_at)}${k.error_code ? ` · ${k.error_code}` : ''}`,
              },
              el('span', { class: 'n', style: `background:var(--c-${k.status})`, text: k.evse_id === k.connector_id ? k.connector_id : `${k.evse_id}.${k.connector_id}` }),
              el('span', { class: 'status', text: STATUS_LABEL[k.status] || k.status }),
              k.error_code ? el('span', { class: 'err', text: k.error_code }) : null))
            : el('li', { class: 'muted', text: 'no connectors reported' })));
    }));
  }

  async loadSessions() {
    const id = this.station?.id;
    if (!id) return;
    try {
      const list = await api(`/sessions?station=${encodeURIComponent(id)}&limit=12`);
      if (this.station?.id !== id) return;
      const tbody = this.q('#sessions');
      if (!list.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'No sessions yet' })));
        return;
      }
      const now = Date.now();
      tbody.replaceChildren(...list.map((s) => {
        const end = s.stopped_at ? Date.parse(s.stopped_at) : now;
        const energy = s.energy_wh ?? (s.meter_stop_wh != null && s.meter_start_wh != null ? s.meter_stop_wh - s.meter_start_wh : null);
        return el('tr', {},
          el('td', { text: formatClock(s.started_at) }),
          // Charger ids usually extend the station's id; the rest is enough here.
          el('td', { title: `${s.charger_id} connector ${s.connector_id}`, text: `${shortCharger(s.charger_id, id)} #${s.connector_id}` }),
          el('td', { text: formatDuration((end - Date.parse(s.started_at)) / 1000) }),
          el('td', { class: 'num', text: energy == null ? '–' : formatEnergy(energy) }),
          s.stopped_at
            ? el('td', { class: 'muted reason', title: s.stop_reason || '', text: s.stop_reason ? humanReason(s.stop_reason) : 'done' })
            : el('td', { class: 'running', text: 'charging' }));
      }));
    } catch (e) { this.onError(e); }
  }

  /** A "Robot lot" link beside the station's chips when it has a robot lot (the list of lots is
   *  read at most every 30 s). */
  async loadLotLink() {
    const id = this.station?.id;
    if (!id) return;
    try {
      if (!this.lots || Date.now() - this.lots.at > 30_000) {
        this.lots = { at: Date.now(), ids: new Set((await api('/lots')).stations) };
      }
      const meta = this.q('.meta');
      if (this.station?.id !== id || !this.lots.ids.has(id) || meta.querySelector('.lot-link')) return;
      meta.append(el('a', { class: 'chip lot-link', href: `/lot?station=${encodeURIComponent(id)}`, text: 'Robot lot' }));
    } catch (e) { this.onError(e); }
  }

  async loadHistory() {
    const id = this.station?.id;
    if (!id) return;
    try {
      const h = await api(`/stations/${encodeURIComponent(id)}/history?hours=${this.hours}`);
      if (this.station?.id !== id) return;
      renderChart(this.q('#chart'), h);
    } catch (e) { this.onError(e); }
  }
}
