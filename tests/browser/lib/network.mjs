// A realistic slice of the Hunan network for the pages to show: real service areas from
// data/network/hunan.csv (whole highways, both directions, plus the urban stations), their
// chargers registered through the API, and a plan for the Python fleet: the G4 corridor past
// Changsha busy to full, the rest of the province quieter, some faults, two stations offline,
// and a few stations with six hours of status history and sessions for the panel's chart.
// Seeded, so every run (and every screenshot) shows the same network.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, pool } from './server.mjs';

const HIGHWAYS = ['G4', 'G60', 'G55', 'G0421', 'G72', 'G65', 'G56', 'G5513'];
export const STATION_COUNT = 160;

function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function readStations() {
  const [head, ...rows] = readFileSync(join(REPO, 'data', 'network', 'hunan.csv'), 'utf8').trim().split('\n');
  const cols = head.split(',');
  const all = rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i], v])));
  const picked = [];
  for (const h of HIGHWAYS) picked.push(...all.filter((s) => s.highway === h && s.kind === 'service_area'));
  picked.push(...all.filter((s) => s.kind === 'urban'));
  for (const s of all) if (picked.length < STATION_COUNT && !picked.includes(s)) picked.push(s);
  return picked.slice(0, STATION_COUNT).map((s) => ({
    id: s.id,
    name: `${s.name_zh} (${s.name_pinyin})`,
    name_zh: s.name_zh,
    lat: Number(s.lat),
    lon: Number(s.lon),
    highway: s.highway || null,
    direction: s.direction || null,
    chargers: Number(s.chargers) || 6,
    power_kw: Number(s.power_kw) || 120,
  }));
}

/** How busy a station is (0..1): the G4 and G60 corridors around Changsha are at their peak. */
function load(s, r) {
  const nearChangsha = Math.hypot(s.lat - 28.2, (s.lon - 112.95) * 0.9);
  let base = 0.22 + r() * 0.25;
  if (s.highway === 'G4' && nearChangsha < 1.1) base = 0.8 + r() * 0.3;
  else if ((s.highway === 'G60' || s.highway === 'G5513') && nearChangsha < 1.2) base = 0.55 + r() * 0.3;
  else if (!s.highway) base = 0.35 + r() * 0.3;
  return Math.min(1, base);
}

/** A station's connectors' last six hours: sessions and the statuses around them. */
function story(r, busyNow, powerKw, tagOf) {
  const history = [];
  const sessions = [];
  let t = 360 - r() * 30; // minutes ago
  let running = false;
  while (t > 0) {
    const gap = 8 + r() * (busyNow ? 18 : 60);
    t -= gap;
    if (t <= 2) break;
    const minutes = 22 + r() * 28;
    const start = t;
    history.push([start + 0.5, 'Preparing']);
    // Sessions are sent between the status history and the status now; their statuses here.
    history.push([start - 0.5, 'Charging']);
    const energy = Math.round((minutes / 60) * powerKw * (0.55 + r() * 0.35) * 1000);
    if (start - minutes <= 1) {
      sessions.push({ start, minutes: null, energy_wh: Math.round(energy * ((start) / minutes)), id_tag: tagOf() });
      running = true;
      break;
    }
    sessions.push({ start, minutes, energy_wh: energy, id_tag: tagOf() });
    history.push([start - minutes, 'Finishing']);
    history.push([start - minutes - 1, 'Available']);
    t = start - minutes - 1;
  }
  return { history, sessions, running };
}

/** Registers stations, chargers and id tags; returns the stations and the fleet's plan. */
export async function buildNetwork(server, { featured = [], controlled = [] } = {}) {
  const r = rng(20260214);
  const stations = readStations();
  await pool(stations, 12, (s) => server.ok('POST', '/api/v1/stations', {
    id: s.id, name: s.name, lat: s.lat, lon: s.lon, highway: s.highway, direction: s.direction,
  }));
  const tags = Array.from({ length: 40 }, (_, i) => `HN${String(1000 + i * 37)}`);
  await pool(tags, 8, (t) => server.ok('POST', '/api/v1/id-tags', { id_tag: t }));
  const tagOf = () => tags[Math.floor(r() * tags.length)];

  // A few stations are out: one with every charger faulted, two with every charger gone.
  const avoid = new Set([...featured, ...controlled]);
  const at = (i) => {
    while (avoid.has(stations[i % stations.length].id)) i++;
    return stations[i % stations.length].id;
  };
  const offline = new Set([at(97), at(140)]);
  const allFaulted = new Set([at(121)]);
  const someFault = new Set([at(5), at(33), at(60), at(77), at(130)]);

  const chargers = [];
  for (const [si, s] of stations.entries()) {
    const n = Math.max(2, Math.min(5, Math.round(s.chargers / 3)));
    const busy = load(s, r);
    for (let c = 1; c <= n; c++) {
      const id = `${s.id}-${String(c).padStart(2, '0')}`;
      const v201 = si % 7 === 3 && c === n;
      const spec = {
        id, station: s.id, version: v201 ? '2.0.1' : '1.6',
        vendor: ['TELD', 'XJ Electric', 'Star Charge', 'Wanbang'][si % 4],
        model: `DC-${s.power_kw}`,
        connectors: [],
        disconnect: offline.has(s.id),
      };
      const connectors = v201 ? 1 : 2;
      for (let k = 1; k <= connectors; k++) {
        const conn = { id: k, status: 'Available' };
        const inUse = r() < busy;
        if (featured.includes(s.id) && !v201) {
          const st = story(r, inUse, s.power_kw, tagOf);
          conn.history = st.history;
          conn.sessions = st.sessions;
          conn.status = st.running ? 'Charging' : 'Available';
        } else if (inUse) {
          conn.status = v201 ? 'Occupied' : (r() < 0.85 ? 'Charging' : (r() < 0.5 ? 'SuspendedEV' : 'Preparing'));
          if (!v201 && conn.status === 'Charging') {
            const start = 5 + r() * 40;
            conn.sessions = [{ start, minutes: null, energy_wh: Math.round((start / 60) * s.power_kw * 0.7 * 1000), id_tag: tagOf() }];
          }
        }
        if (controlled.includes(s.id)) { conn.status = 'Available'; delete conn.sessions; delete conn.history; }
        if (allFaulted.has(s.id)) conn.status = v201 ? 'Faulted' : 'Faulted';
        if (someFault.has(s.id) && c === 1 && k === 1) conn.status = 'Faulted';
        if (conn.status === 'Faulted' && !v201) conn.error_code = ['GroundFailure', 'PowerSwitchFailure', 'OverCurrentFailure'][Math.floor(r() * 3)];
        spec.connectors.push(conn);
      }
      chargers.push(spec);
    }
  }
  await pool(chargers, 16, (c) => server.ok('POST', '/api/v1/chargers', { id: c.id, station_id: c.station }));
  return { stations, plan: { chargers }, offline, allFaulted };
}
