// The forecast layer of the operations map: a time slider over the next 24 hours that colours
// every station by its forecast probability of a queue at that hour, a legend, and the
// congestion warnings (stations, hours, probability), worst first. The forecasts come from
// `/forecast/map` and `/forecast/warnings`, fitted by the platform on its own clock (simulated
// time in the demo), and are re-read every few minutes.

import { api } from './api.js';
import { el, nameLines } from './names.js';

/** Probability bins: [upper bound, label]. A marker gets `data-fc` = the bin index. */
export const BINS = [
  [0.1, 'under 10%'],
  [0.3, '10–30%'],
  [0.5, '30–50%'],
  [0.8, '50–80%'],
  [Infinity, '80% and more'],
];

export function binOf(p) {
  return BINS.findIndex(([hi]) => p < hi);
}

const REFRESH_MS = 5 * 60_000;

export class ForecastLayer {
  constructor({ root, map, stations, onSelect, onError }) {
    this.root = root;
    this.map = map;
    this.stations = stations; // Map id -> station (for names)
    this.onSelect = onSelect;
    this.onError = onError;
    this.data = null;
    this.hour = 0;
    this.on = false;
    this.slider = root.querySelector('#fc-hour');
    this.time = root.querySelector('#fc-time');
    this.toggle = root.querySelector('#fc-toggle');
    this.list = root.querySelector('#fc-warnings');
    this.count = root.querySelector('#fc-count');
    root.querySelector('#fc-legend').replaceChildren(...BINS.map(([, label], i) =>
      el('li', {}, el('span', { class: `sw fc-${i}` }), label)));
    this.slider.addEventListener('input', () => {
      this.hour = Number(this.slider.value) || 0;
      this.show(true);
    });
    this.toggle.addEventListener('click', () => this.show(!this.on));
  }

  async load() {
    try {
      const [data, warnings] = await Promise.all([api('/forecast/map?hours=24'), api('/forecast/warnings?hours=24')]);
      this.data = data;
      this.byId = new Map(data.stations.map((s) => [s.id, s]));
      this.slider.max = String(Math.max(0, data.hours.length - 1));
      this.slider.disabled = false;
      this.hour = Math.min(this.hour, data.hours.length - 1);
      this.renderWarnings(warnings);
      this.apply();
      this.root.dataset.ready = 'true';
    } catch (e) {
      this.onError?.(e);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  show(on) {
    this.on = on;
    this.toggle.setAttribute('aria-pressed', String(on));
    this.toggle.textContent = on ? 'Hide' : 'Show';
    this.map.svg.classList.toggle('forecast-on', on);
    this.apply();
  }

  /** Sets every marker's bin for the chosen hour (markers of stations without a forecast
   *  lose theirs) and the time label. */
  apply() {
    if (!this.data) return;
    const at = this.data.hours[this.hour];
    if (at) {
      const d = new Date(at);
      this.time.textContent = `${this.hour === 0 ? 'this hour' : `+${this.hour} h`} · ${d.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' })}`;
      this.slider.setAttribute('aria-valuetext', this.time.textContent);
    }
    for (const [id, m] of this.map.markers) {
      const s = this.byId.get(id);
      const p = s?.p?.[this.hour];
      if (p == null) { m.el.removeAttribute('data-fc'); continue; }
      const bin = String(binOf(p));
      if (m.el.getAttribute('data-fc') !== bin) m.el.setAttribute('data-fc', bin);
      m.el.dataset.fcP = p.toFixed(2);
    }
  }

  renderWarnings(w) {
    this.count.textContent = String(w.warnings.length);
    this.list.replaceChildren(...w.warnings.slice(0, 30).map((x) => {
      const [zh, latin] = nameLines(x.name);
      const first = x.hours[0];
      const last = x.hours[x.hours.length - 1];
      const hh = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      const when = first ? `${hh(first.at)}–${hh(new Date(Date.parse(last.at) + 3600_000).toISOString())}` : '';
      return el('li', { 'data-station': x.station_id }, el('button', { type: 'button', onclick: () => this.onSelect(x.station_id) },
        el('span', { class: `sw fc-${binOf(x.peak_probability)}` }),
        el('span', { class: 'name', title: latin }, zh || latin, el('small', { text: [x.highway, x.direction].filter(Boolean).join(' ') })),
        el('span', { class: 'why', text: `${when} · ${Math.round(100 * x.peak_probability)}%` })));
    }));
  }
}
