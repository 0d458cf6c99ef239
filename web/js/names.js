// Station names, directions and states, shared by both pages.

const CJK = /[\u3400-\u9fff\uf900-\ufaff]/;

/** Splits "长沙北服务区 (Changsha North)" or "长沙北服务区 Changshabei" into the Chinese name and
 *  its romanisation; a name without Chinese is all `latin`. */
export function splitName(name) {
  const s = (name || '').trim();
  const paren = s.match(/^(.*?)\s*[(（]([^()（）]+)[)）]\s*$/);
  if (paren && CJK.test(paren[1])) return { zh: paren[1].trim(), latin: paren[2].trim() };
  if (CJK.test(s)) {
    const m = s.match(/^([^A-Za-z]*[\u3400-\u9fff\uf900-\ufaff][^A-Za-z]*?)\s+([A-Za-z].*)$/);
    if (m) return { zh: m[1].trim(), latin: m[2].trim() };
    return { zh: s, latin: '' };
  }
  return { zh: '', latin: s };
}

/** The most prominent line of a name, and the secondary one. */
export function nameLines(name) {
  const { zh, latin } = splitName(name);
  return zh ? [zh, latin] : [latin, ''];
}

const DIRS = {
  N: ['Northbound', '北行', '↑'],
  S: ['Southbound', '南行', '↓'],
  E: ['Eastbound', '东行', '→'],
  W: ['Westbound', '西行', '←'],
};

export function directionLabel(d, { zh = false } = {}) {
  const x = DIRS[(d || '').toUpperCase()];
  if (!x) return d || '';
  return zh ? `${x[0]} · ${x[1]}` : x[0];
}

export function directionArrow(d) {
  return DIRS[(d || '').toUpperCase()]?.[2] || '';
}

/** Screen offset (px) of a station marker so that the two directions of one service area,
 *  which share a position, sit side by side: traffic keeps right, so the northbound side is
 *  east of the road, the eastbound side south of it. */
export function sideOffset(d) {
  switch ((d || '').toUpperCase()) {
    case 'N': return [5, 0];
    case 'S': return [-5, 0];
    case 'E': return [0, 5];
    case 'W': return [0, -5];
    default: return [0, 0];
  }
}

export const STATES = [
  ['idle', 'Idle', 'most connectors free'],
  ['busy', 'Busy', 'most connectors in use'],
  ['full', 'Full', 'no connector free: queue'],
  ['fault', 'Fault', 'no connector in service'],
  ['offline', 'Offline', 'no charger connected'],
  ['empty', 'No data', 'no connectors reported yet'],
];

export const STATUS_ORDER = ['available', 'charging', 'occupied', 'reserved', 'unavailable', 'faulted', 'offline'];

export const STATUS_LABEL = {
  available: 'Available',
  occupied: 'Occupied',
  charging: 'Charging',
  reserved: 'Reserved',
  unavailable: 'Unavailable',
  faulted: 'Faulted',
  offline: 'Offline',
};

export function total(c) {
  let n = 0;
  for (const k of STATUS_ORDER) n += c?.[k] || 0;
  return n;
}

/** One word for a station from its connector counts. */
export function stationState(c) {
  const all = total(c);
  if (all === 0) return 'empty';
  if (c.offline === all) return 'offline';
  const inService = all - c.offline - c.faulted - c.unavailable;
  if (inService <= 0) return 'fault';
  if (c.available === 0) return 'full';
  const inUse = c.occupied + c.charging + c.reserved;
  return inUse * 2 > inService ? 'busy' : 'idle';
}

export function formatEnergy(wh) {
  if (wh == null) return '–';
  if (wh >= 1e9) return `${(wh / 1e9).toFixed(2)} GWh`;
  if (wh >= 1e6) return `${(wh / 1e6).toFixed(wh >= 1e8 ? 0 : 1)} MWh`;
  return `${(wh / 1e3).toFixed(wh >= 1e5 ? 0 : 1)} kWh`;
}

export function formatDuration(s) {
  if (s == null || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')}`;
}

export function formatClock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

export const fmtInt = new Intl.NumberFormat('en-US');

/** Natural order for highway names: G4 < G55 < G56 < G5513 < G60 (by number, then text). */
export function compareHighways(a, b) {
  const na = parseInt(String(a).replace(/\D+/g, ''), 10);
  const nb = parseInt(String(b).replace(/\D+/g, ''), 10);
  const ka = String(a).replace(/\d+/g, '');
  const kb = String(b).replace(/\d+/g, '');
  if (ka !== kb) return ka < kb ? -1 : 1;
  const la = String(na).length;
  const lb = String(nb).length;
  // Chinese expressway numbers: one or two digits are trunk lines; four are branches of the
  // line their first two digits name, so G5513 follows G55.
  const ta = la > 2 ? Math.floor(na / 100) : na;
  const tb = lb > 2 ? Math.floor(nb / 100) : nb;
  if (ta !== tb) return ta - tb;
  return la - lb || na - nb;
}

/** Order along a highway in the direction of travel (positions only: a northbound driver
 *  meets the southernmost service area first). */
export function travelOrder(direction) {
  switch ((direction || '').toUpperCase()) {
    case 'N': return (a, b) => a.lat - b.lat;
    case 'S': return (a, b) => b.lat - a.lat;
    case 'E': return (a, b) => a.lon - b.lon;
    case 'W': return (a, b) => b.lon - a.lon;
    default: return (a, b) => (a.name < b.name ? -1 : 1);
  }
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    // Through the CSSOM: the pages' Content-Security-Policy forbids style attributes.
    else if (k === 'style') e.style.cssText = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element with `attrs` set; `style` goes through the CSSOM. */
export function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    // Through the CSSOM: the page's Content-Security-Policy forbids style attributes.
    if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  return e;
}
