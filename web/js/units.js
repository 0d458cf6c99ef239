// The mobile units layer of the operations map: every unit where it last reported (a van for a
// charging vehicle, a box for a container, red when broken), each unit's planned drives as
// lines along the highway with the station it is heading for ringed, and a panel listing the
// units ("leave at 14:00 for 昭山服务区, ~12 cars") with the plan's totals. The plan comes from
// `/mobile-units/plan`, re-read whenever the platform announces a new one (`units_planned`);
// positions from `/mobile-units`, then moved as each unit reports (`unit_moved`), with the list
// re-read once a minute in case the feed missed something.

import { api } from './api.js';
import { el, svg, nameLines, formatClock, fmtInt } from './names.js';

const POSITIONS_MS = 60_000;

// Icons drawn around (0, 0) in screen pixels; CSS scales them by 1/k so they keep their size.
const ICONS = {
  vehicle: 'M-8,-5h9.5l4.5,4.5v5.5h-14z',
  container: 'M-6.5,-6.5h13v13h-13z',
};

const STATUS_LABEL = { ready: 'ready', driving: 'driving', serving: 'serving', broken: 'broken' };

function short(name) {
  const [zh, latin] = nameLines(name || '');
  return zh || latin;
}

/** What a unit does next, in a line: its next drive, or where it serves, or why it is idle. */
export function nextLine(unit, plan, now = Date.now()) {
  if (unit.status === 'broken') return 'broken: left out of the plan';
  const p = plan?.units.find((x) => x.unit === unit.unit);
  const move = p?.moves.find((m) => Date.parse(m.arrive_at) > now);
  if (move) {
    const cars = p.stays
      .filter((s) => s.station_id === move.to && Date.parse(s.from) >= Date.parse(move.arrive_at) - 3_600_000)
      .reduce((a, s) => a + s.expected_cars, 0);
    const where = short(move.to_name);
    // A drive through a station on to another serves nobody there.
    const served = cars >= 0.5 ? `, ~${Math.round(cars)} cars` : ', passing';
    if (move.in_progress || Date.parse(move.depart_at) <= now) {
      return `driving to ${where}, arrives ${formatClock(move.arrive_at)}${served}`;
    }
    return `leave at ${formatClock(move.depart_at)} for ${where}${served}`;
  }
  const stay = p?.stays.find((s) => Date.parse(s.to) > now);
  if (stay) return `${unit.status === 'serving' ? 'serving' : 'stays'} at ${short(stay.name)}, ~${Math.round(stay.expected_cars)} cars`;
  return 'no move planned';
}

export class UnitsLayer {
  constructor({ map, onSelect, onError }) {
    this.map = map;
    this.onSelect = onSelect;
    this.onError = onError;
    this.plan = null;
    this.units = [];
    this.on = true;
    // Routes and rings under the station markers, unit markers above them, all in the map's
    // moving view so they pan and zoom with it.
    const view = map.markersLayer.parentNode;
    this.routes = svg('g', { class: 'unit-routes' });
    this.markers = svg('g', { class: 'unit-markers' });
    view.insertBefore(this.routes, map.markersLayer);
    view.append(this.markers);
    this.root = el('section', { class: 'units-panel', id: 'units', 'aria-labelledby': 'units-title', hidden: true });
    const wide = window.matchMedia('(min-width: 861px)').matches;
    this.toggleList = el('button', {
      type: 'button', class: 'units-toggle', 'aria-expanded': String(wide), 'aria-controls': 'units-body',
      onclick: () => this.toggleList.setAttribute('aria-expanded', String(this.toggleList.getAttribute('aria-expanded') !== 'true')),
    }, el('span', { id: 'units-title', text: 'Mobile units' }), el('span', { class: 'count', id: 'units-count', text: '0' }));
    this.layerButton = el('button', {
      type: 'button', class: 'units-layer', 'aria-pressed': 'true', 'aria-label': 'Show mobile units on the map',
      text: 'On', onclick: () => this.show(!this.on),
    });
    this.totals = el('p', { class: 'units-totals', id: 'units-totals' });
    this.list = el('ol', { class: 'units-list', id: 'units-list' });
    this.root.append(
      el('div', { class: 'units-head' }, this.toggleList, this.layerButton),
      el('div', { class: 'units-body', id: 'units-body' }, this.totals, this.list),
    );
    map.svg.parentNode.append(this.root);
  }

  async load() {
    try {
      const [units, plan] = await Promise.all([api('/mobile-units'), api('/mobile-units/plan?hours=24')]);
      this.units = units;
      this.plan = plan;
      this.loadedAt = Date.now();
      // The platform's clock (simulated in the demo) as of this answer.
      this.clock = { at: Date.parse(plan.now), wall: this.loadedAt, speed: plan.clock_speed || 1 };
      this.render();
    } catch (e) {
      this.onError?.(e);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refreshPositions(), POSITIONS_MS);
  }

  /** A new plan was announced: read it (and the positions) again, once for a burst. */
  reloadSoon() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.load(), 200);
  }

  /** A unit reported (`unit_moved`): move it at once. A unit the layer does not know, or one
   *  at a new station (whose name the event does not carry), reads the list again. */
  moved(ev) {
    const u = this.units?.find((x) => x.id === ev.unit_id);
    if (!u) { this.reloadSoon(); return; }
    u.position = { lat: ev.lat, lon: ev.lon };
    u.status = ev.status;
    u.reported_at = ev.at;
    if ((u.station_id ?? null) !== (ev.station_id ?? null)) {
      u.station_id = ev.station_id;
      clearTimeout(this.names);
      this.names = setTimeout(() => this.refreshPositions(), 500);
    }
    // Many units report in a burst: draw once per frame.
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = null; this.render(); });
  }

  async refreshPositions() {
    // The plan itself once a minute too, in case an announcement was missed.
    if (Date.now() - (this.loadedAt || 0) > 60_000) { this.load(); return; }
    try {
      this.units = await api('/mobile-units');
      this.render();
    } catch (e) {
      this.onError?.(e);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refreshPositions(), POSITIONS_MS);
  }

  show(on) {
    this.on = on;
    this.layerButton.setAttribute('aria-pressed', String(on));
    this.layerButton.textContent = on ? 'On' : 'Off';
    this.map.svg.classList.toggle('units-off', !on);
  }

  /** The unit as the list shows it: the plan's view of it with the latest reported position
   *  and status. */
  merged() {
    const byId = new Map(this.units.map((u) => [u.id, u]));
    const inPlan = new Set((this.plan?.units || []).map((u) => u.unit));
    const fromPlan = (this.plan?.units || []).map((p) => {
      const u = byId.get(p.unit);
      return u ? { ...p, position: u.position, status: u.status, station_name: u.station_name } : p;
    });
    // Units added since the plan was made.
    const extra = this.units.filter((u) => !inPlan.has(u.id)).map((u) => ({
      unit: u.id, name: u.name, kind: u.kind, position: u.position, status: u.status,
      station_id: u.station_id, station_name: u.station_name, stays: [], moves: [],
    }));
    return [...fromPlan, ...extra];
  }

  /** Now on the platform's clock, which the plan's times are in. */
  now() {
    const c = this.clock;
    return c && Number.isFinite(c.at) ? c.at + (Date.now() - c.wall) * c.speed : Date.now();
  }

  render() {
    const units = this.merged();
    this.root.hidden = units.length === 0;
    this.root.querySelector('#units-count').textContent = String(units.length);
    this.toggleList.setAttribute('aria-label', `Mobile units (${units.length})`);
    const now = this.now();
    // Routes: every drive not yet over, and a ring at each station a unit is heading for.
    const routes = [];
    const targets = new Map();
    for (const u of units) {
      if (u.status === 'broken') continue;
      for (const m of u.moves) {
        if (Date.parse(m.arrive_at) <= now || m.route.length < 2) continue;
        const d = this.map.pathOf(m.route.map(([lat, lon]) => [lon, lat]), false);
        const started = m.in_progress || Date.parse(m.depart_at) <= now;
        routes.push(svg('path', {
          d, class: `unit-route${started ? ' started' : ''}`, 'data-unit': u.unit, 'data-to': m.to,
        }));
        const [lat, lon] = m.route[m.route.length - 1];
        if (!targets.has(m.to)) targets.set(m.to, { lat, lon, name: m.to_name, units: [] });
        targets.get(m.to).units.push(u.name);
      }
    }
    const rings = [...targets].map(([id, t]) => {
      const [x, y] = this.map.project(t.lon, t.lat);
      const ring = svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), class: 'unit-target', 'data-station': id });
      const title = svg('title');
      title.textContent = `${short(t.name)}: ${t.units.length} unit${t.units.length > 1 ? 's' : ''} on the way`;
      ring.append(title);
      return ring;
    });
    this.routes.replaceChildren(...routes, ...rings);
    this.markers.replaceChildren(...units.map((u) => {
      const [x, y] = this.map.project(u.position.lon, u.position.lat);
      const g = svg('g', {
        class: `unit-marker kind-${u.kind} status-${u.status}${u.status === 'broken' ? ' broken' : ''}`,
        'data-id': u.unit, style: `--x:${x.toFixed(1)};--y:${y.toFixed(1)}`,
      });
      g.append(svg('path', { d: ICONS[u.kind] || ICONS.vehicle }));
      const title = svg('title');
      title.textContent = `${u.name} (${u.kind}): ${STATUS_LABEL[u.status] || u.status}${u.station_name ? ` · ${short(u.station_name)}` : ''}`;
      g.append(title);
      return g;
    }));
    this.renderPanel(units, now);
    this.root.dataset.ready = 'true';
    this.root.dataset.version = String(this.plan?.version ?? 0);
  }

  renderPanel(units, now) {
    const p = this.plan;
    if (p) {
      const n = (v) => fmtInt.format(Math.round(v));
      this.totals.replaceChildren(
        el('span', { class: 'with-plan', title: 'queue car-hours over the plan’s horizon with the plan' }, 'queue ', el('b', { text: n(p.unmet_car_h) }), ' car-h with plan'),
        el('span', { class: 'static', title: 'with the units spread in proportion to peak shortfall and left there' }, ' · ', n(p.static_car_h), ' static'),
        el('span', { class: 'none' }, ' · ', n(p.no_units_car_h), ' without units'),
        el('small', { text: `plan ${p.version} · ${formatClock(p.planned_at)} · ${p.reason.replace('_', ' ')} · ${fmtInt.format(Math.round(p.relocation_km))} km` }),
      );
    }
    // On the road first, then by when they must leave, then the rest; broken last.
    const next = (u) => u.moves.find((m) => Date.parse(m.arrive_at) > now);
    const rank = (u) => {
      if (u.status === 'broken') return [3, 0];
      if (u.status === 'driving') return [0, 0];
      const m = next(u);
      return m ? [1, Date.parse(m.depart_at)] : [2, 0];
    };
    const sorted = [...units].sort((a, b) => {
      const [ra, ta] = rank(a);
      const [rb, tb] = rank(b);
      return ra - rb || ta - tb || a.unit.localeCompare(b.unit);
    });
    this.list.replaceChildren(...sorted.map((u) => {
      const line = nextLine(u, p, now);
      const target = u.moves.find((m) => Date.parse(m.arrive_at) > now)?.to || u.station_id;
      return el('li', { 'data-unit': u.unit, class: `status-${u.status}` },
        el('button', { type: 'button', onclick: () => target && this.onSelect?.(target) },
          el('span', { class: `icon kind-${u.kind}`, 'aria-hidden': 'true' }),
          el('span', { class: 'name', title: u.name, text: u.name }),
          el('span', { class: `status s-${u.status}`, text: STATUS_LABEL[u.status] || u.status }),
          el('span', { class: 'next', text: line })));
    }));
  }
}
