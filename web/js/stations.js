// The network as the operations map holds it: every station with its connector counts, kept
// current from the event feed. Events only mark stations dirty; the page redraws dirty
// stations once per animation frame, however many events arrived in between.

import { stationState, STATUS_ORDER } from './names.js';

export class Network {
  constructor() {
    this.stations = new Map();
    this.dirty = new Set();
    this.listeners = new Set();
    this.frame = 0;
  }

  /** Replaces everything with a fresh `GET /stations` answer. */
  load(list) {
    const seen = new Set();
    for (const s of list) {
      seen.add(s.id);
      const old = this.stations.get(s.id);
      const st = { ...s, connectors: { ...s.connectors } };
      st.state = stationState(st.connectors);
      this.stations.set(s.id, st);
      if (!old || old.state !== st.state || JSON.stringify(old.connectors) !== JSON.stringify(st.connectors)) this.touch(s.id);
    }
    for (const id of [...this.stations.keys()]) {
      if (!seen.has(id)) { this.stations.delete(id); this.touch(id); }
    }
  }

  /** Replaces one station (after `GET /stations/{id}`). */
  put(s) {
    const st = { ...s, connectors: { ...s.connectors } };
    st.state = stationState(st.connectors);
    this.stations.set(s.id, st);
    this.touch(s.id);
  }

  /** A `status_changed` event: one connector moved from `previous` to `status`. Returns false
   *  when the station is unknown (a new station: the caller re-reads it). */
  applyStatus(ev) {
    const st = this.stations.get(ev.station_id);
    if (!st) return false;
    const c = st.connectors;
    if (ev.previous && STATUS_ORDER.includes(ev.previous) && c[ev.previous] > 0) c[ev.previous] -= 1;
    if (STATUS_ORDER.includes(ev.status)) c[ev.status] = (c[ev.status] || 0) + 1;
    st.state = stationState(c);
    this.touch(st.id);
    return true;
  }

  /** A `queue_changed` event: the number of cars seen waiting at a station. */
  applyQueue(ev) {
    const st = this.stations.get(ev.station_id);
    if (!st) return false;
    st.waiting = ev.waiting;
    this.touch(st.id);
    return true;
  }

  touch(id) {
    this.dirty.add(id);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    if (!this.dirty.size) return;
    const ids = this.dirty;
    this.dirty = new Set();
    for (const fn of this.listeners) fn(ids);
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  totals() {
    const t = { available: 0, occupied: 0, charging: 0, reserved: 0, unavailable: 0, faulted: 0, offline: 0 };
    const states = { idle: 0, busy: 0, full: 0, fault: 0, offline: 0, empty: 0 };
    for (const s of this.stations.values()) {
      for (const k of STATUS_ORDER) t[k] += s.connectors[k] || 0;
      states[s.state] += 1;
    }
    return { connectors: t, states };
  }
}
