// The map: province outline, highways and one marker per station in one SVG, drawn in Web
// Mercator so an optional tile layer lines up. Pan and zoom change only the transform of one
// group (and a CSS variable that keeps markers the same size on screen), so moving the map
// costs the same with 50 stations or 5,000.

import { svg, nameLines, directionLabel, sideOffset, total } from './names.js';

const WORLD = 65536; // Web Mercator pixels at zoom 8
const BASE_ZOOM = 8;

function mercator(lon, lat) {
  const phi = (Math.max(-85, Math.min(85, lat)) * Math.PI) / 180;
  const x = ((lon + 180) / 360) * WORLD;
  const y = ((1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2) * WORLD;
  return [x, y];
}

/** Every ring/line of a GeoJSON geometry as arrays of [lon, lat]. */
function lines(geometry) {
  if (!geometry) return [];
  switch (geometry.type) {
    case 'LineString': return [geometry.coordinates];
    case 'MultiLineString': return geometry.coordinates;
    case 'Polygon': return geometry.coordinates;
    case 'MultiPolygon': return geometry.coordinates.flat();
    case 'GeometryCollection': return geometry.geometries.flatMap(lines);
    default: return [];
  }
}

function features(geojson) {
  if (!geojson) return [];
  if (geojson.type === 'FeatureCollection') return geojson.features || [];
  if (geojson.type === 'Feature') return [geojson];
  return [{ type: 'Feature', properties: {}, geometry: geojson }];
}

/** Area-weighted centroid of the largest ring, for placing a label. */
function centroid(rings) {
  let best = null;
  for (const ring of rings) {
    let a = 0; let cx = 0; let cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f;
      cx += (ring[j][0] + ring[i][0]) * f;
      cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (a && (!best || Math.abs(a) > best.a)) best = { a: Math.abs(a), c: [cx / (3 * a), cy / (3 * a)] };
  }
  return best?.c || null;
}

export function highwayRef(props = {}) {
  return props.ref || props.highway || props.code || props.name_en || props.name || props.id || '';
}

export class MapView {
  constructor(svgEl, { onSelect, tooltip }) {
    this.svg = svgEl;
    this.views = [...svgEl.querySelectorAll('.view')];
    this.tilesLayer = svgEl.querySelector('.tiles');
    this.land = svgEl.querySelector('.land');
    this.roads = svgEl.querySelector('.roads');
    this.markersLayer = svgEl.querySelector('.markers');
    this.overlay = svgEl.querySelector('.overlay');
    this.tooltip = tooltip;
    this.onSelect = onSelect;
    this.origin = mercator(111.5, 27.5);
    this.k = 1;
    this.tx = 0;
    this.ty = 0;
    this.markers = new Map();
    this.shields = [];
    this.labels = [];
    this.bounds = null;
    this.tileUrl = null;
    this.tiles = new Map();
    this.frame = 0;
    this.selected = null;
    this.fitPadding = () => ({ left: 0, right: 0, top: 0, bottom: 0 });
    this.bindInput();
    this.lastSize = null;
    new ResizeObserver(() => this.resized()).observe(this.svg);
  }

  project(lon, lat) {
    const [x, y] = mercator(lon, lat);
    return [x - this.origin[0], y - this.origin[1]];
  }

  extend(x, y) {
    const b = this.bounds || (this.bounds = [Infinity, Infinity, -Infinity, -Infinity]);
    b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y);
    b[2] = Math.max(b[2], x); b[3] = Math.max(b[3], y);
  }

  pathOf(coords, close) {
    let d = '';
    for (let i = 0; i < coords.length; i++) {
      const [x, y] = this.project(coords[i][0], coords[i][1]);
      d += `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
    }
    return close ? `${d}Z` : d;
  }

  /** Draws the outline (bounds of the view), the prefectures' borders and names, and the
   *  highways with a shield per highway. */
  setGeo(outline, highways, prefectures) {
    this.land.replaceChildren();
    this.roads.replaceChildren();
    this.overlay.replaceChildren();
    this.bounds = null;
    for (const f of features(outline)) {
      const d = lines(f.geometry).map((ring) => this.pathOf(ring, true)).join('');
      if (!d) continue;
      const neighbour = f.properties?.role === 'neighbour' || f.properties?.neighbour;
      this.land.append(svg('path', { d, class: neighbour ? 'neighbour' : 'province', 'fill-rule': 'evenodd' }));
      if (!neighbour) for (const ring of lines(f.geometry)) for (const [lon, lat] of ring) this.extend(...this.project(lon, lat));
    }
    const borders = [];
    this.labels = [];
    for (const f of features(prefectures)) {
      const rings = lines(f.geometry);
      borders.push(rings.map((ring) => this.pathOf(ring, true)).join(''));
      const name = f.properties?.name;
      const c = name && centroid(rings);
      if (!c) continue;
      const [x, y] = this.project(c[0], c[1]);
      const t = svg('text', { class: 'pref-label', 'aria-hidden': 'true' });
      t.textContent = name;
      this.overlay.append(t);
      this.labels.push({ g: t, x, y });
    }
    if (borders.length) this.land.append(svg('path', { d: borders.join(''), class: 'prefectures' }));
    const byRef = new Map();
    const casing = [];
    const road = [];
    for (const f of features(highways)) {
      const parts = lines(f.geometry);
      const d = parts.map((l) => this.pathOf(l, false)).join('');
      if (!d) continue;
      casing.push(d);
      road.push(d);
      const ref = highwayRef(f.properties);
      if (!ref) continue;
      // A shield near the middle of the longest part of each highway.
      for (const p of parts) {
        const best = byRef.get(ref);
        if (!best || p.length > best.length) byRef.set(ref, p);
      }
    }
    this.roads.append(svg('path', { d: casing.join(''), class: 'casing' }), svg('path', { d: road.join(''), class: 'road' }));
    this.shields = [...byRef].map(([ref, p]) => {
      // Between two service areas, not on one (the line's vertices are the service areas).
      const i = Math.max(1, Math.floor(p.length / 2));
      const a = this.project(p[i - 1][0], p[i - 1][1]);
      const b = this.project(p[Math.min(i, p.length - 1)][0], p[Math.min(i, p.length - 1)][1]);
      const [x, y] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      const g = svg('g', { class: 'shield', 'aria-hidden': 'true' });
      const w = 8 + ref.length * 6.6;
      g.append(svg('rect', { x: -w / 2, y: -8, width: w, height: 16, rx: 3 }));
      const t = svg('text', {});
      t.textContent = ref;
      g.append(t);
      this.overlay.append(g);
      return { g, x, y };
    });
    this.geoBounds = !!this.bounds;
    this.fitted = false;
    this.fit();
  }

  /** Creates every marker (once, or again when the set of stations changes). */
  setStations(stations) {
    const frag = document.createDocumentFragment();
    const keep = new Set();
    for (const s of stations) {
      if (s.lat == null || s.lon == null) continue;
      keep.add(s.id);
      if (this.markers.has(s.id)) continue;
      const [x, y] = this.project(s.lon, s.lat);
      const [ox, oy] = sideOffset(s.direction);
      const c = svg('circle', {
        cx: x.toFixed(1), cy: y.toFixed(1), class: 'marker s-empty', tabindex: '0', role: 'button',
        'data-id': s.id, style: `--ox:${ox};--oy:${oy}`,
      });
      this.markers.set(s.id, { el: c, station: s, x, y, state: 'empty', label: '' });
      frag.append(c);
    }
    for (const [id, m] of this.markers) {
      if (!keep.has(id)) { m.el.remove(); this.markers.delete(id); }
    }
    this.markersLayer.append(frag);
    if (!this.geoBounds) {
      // No outline to frame the view: frame the stations.
      this.bounds = null;
      for (const m of this.markers.values()) this.extend(m.x, m.y);
    }
    if (!this.fitted) this.fit();
  }

  /** Recolours the markers of `stations` (already-current station objects). */
  update(stations) {
    for (const s of stations) {
      const m = this.markers.get(s.id);
      if (!m) continue;
      m.station = s;
      const faulty = s.connectors.faulted > 0;
      const cls = `marker s-${s.state}${faulty ? ' has-fault' : ''}${this.selected === s.id ? ' selected' : ''}`;
      if (m.el.getAttribute('class') !== cls) m.el.setAttribute('class', cls);
      const [zh, latin] = nameLines(s.name);
      const queued = s.waiting > 0 ? `, ${s.waiting} waiting` : '';
      const label = `${zh}${latin ? ` ${latin}` : ''}, ${s.highway || ''} ${directionLabel(s.direction)}: ${s.state}, ${s.connectors.available} of ${total(s.connectors)} connectors free${queued}`;
      if (m.label !== label) { m.el.setAttribute('aria-label', label); m.label = label; }
      m.state = s.state;
    }
  }

  flash(id) {
    const m = this.markers.get(id);
    if (!m) return;
    m.el.classList.remove('flash');
    // Restart the animation on the next frame.
    requestAnimationFrame(() => m.el.classList.add('flash'));
  }

  select(id) {
    if (this.selected) this.markers.get(this.selected)?.el.classList.remove('selected');
    this.selected = id;
    const m = id && this.markers.get(id);
    if (m) {
      m.el.classList.add('selected');
      // Selected marker drawn last so that it is on top.
      this.markersLayer.append(m.el);
    }
  }

  focusMarker(id) {
    this.markers.get(id)?.el.focus({ preventScroll: true });
  }

  /** The map area changed size (window, or the station panel opening beside it): refit when
   *  the user has not moved the map since the last fit, else keep the same centre. */
  resized() {
    const [w, h] = this.size();
    const last = this.lastSize;
    this.lastSize = [w, h];
    if (!this.bounds) return;
    if (!this.fitted || !this.userMoved) { this.fit(); return; }
    if (last) {
      this.tx += (w - last[0]) / 2;
      this.ty += (h - last[1]) / 2;
    }
    this.schedule();
  }

  size() {
    const r = this.svg.getBoundingClientRect();
    return [r.width || 1, r.height || 1];
  }

  fit() {
    const b = this.bounds;
    if (!b || !Number.isFinite(b[0])) return;
    const [w, h] = this.size();
    if (w < 10 || h < 10) return;
    const p = this.fitPadding();
    const aw = Math.max(50, w - p.left - p.right);
    const ah = Math.max(50, h - p.top - p.bottom);
    const bw = Math.max(1, b[2] - b[0]);
    const bh = Math.max(1, b[3] - b[1]);
    this.k = Math.min(aw / bw, ah / bh) * 0.92;
    this.minK = this.k * 0.5;
    this.maxK = this.k * 60;
    this.tx = p.left + aw / 2 - ((b[0] + b[2]) / 2) * this.k;
    this.ty = p.top + ah / 2 - ((b[1] + b[3]) / 2) * this.k;
    this.fitted = true;
    this.userMoved = false;
    this.schedule();
  }

  zoomAt(factor, sx, sy) {
    this.userMoved = true;
    const k = Math.min(this.maxK || 1e9, Math.max(this.minK || 0, this.k * factor));
    const f = k / this.k;
    this.tx = sx - (sx - this.tx) * f;
    this.ty = sy - (sy - this.ty) * f;
    this.k = k;
    this.schedule();
  }

  zoomBy(factor) {
    const [w, h] = this.size();
    this.zoomAt(factor, w / 2, h / 2);
  }

  panBy(dx, dy) {
    this.userMoved = true;
    this.tx += dx;
    this.ty += dy;
    this.schedule();
  }

  /** Centres a station and zooms in to at least `minZoom` times the fitted scale. */
  centerOn(id, minZoom = 3) {
    const m = this.markers.get(id);
    if (!m) return;
    const [w, h] = this.size();
    const p = this.fitPadding();
    this.k = Math.max(this.k, (this.minK || this.k) * 2 * minZoom);
    this.tx = p.left + (w - p.left - p.right) / 2 - m.x * this.k;
    this.ty = p.top + (h - p.top - p.bottom) / 2 - m.y * this.k;
    this.userMoved = true;
    this.schedule();
  }

  /** Pans so that a station is not hidden under something covering the bottom of the map
   *  (the station panel as a bottom sheet on a phone). */
  ensureVisible(id, coveredBottom) {
    const pos = this.screenOf(id);
    if (!pos) return;
    const [, h] = this.size();
    const visibleH = h - coveredBottom;
    if (pos[1] > 40 && pos[1] < visibleH - 30) return;
    this.ty += visibleH / 2 - pos[1];
    this.userMoved = true;
    this.schedule();
  }

  screenOf(id) {
    const m = this.markers.get(id);
    if (!m) return null;
    const [ox, oy] = sideOffset(m.station.direction);
    return [m.x * this.k + this.tx + ox, m.y * this.k + this.ty + oy];
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.apply());
  }

  apply() {
    this.frame = 0;
    const transform = `translate(${this.tx.toFixed(2)},${this.ty.toFixed(2)}) scale(${this.k.toFixed(5)})`;
    for (const v of this.views) v.setAttribute('transform', transform);
    this.svg.style.setProperty('--k', this.k.toFixed(5));
    const [w, h] = this.size();
    for (const s of [...this.labels, ...this.shields]) {
      const x = s.x * this.k + this.tx;
      const y = s.y * this.k + this.ty;
      const visible = x > -20 && y > -20 && x < w + 20 && y < h + 20;
      s.g.style.display = visible ? '' : 'none';
      if (visible) s.g.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    }
    this.drawTiles();
    this.hideTooltip();
  }

  // -- optional online tiles

  setTiles(template) {
    this.tileUrl = template || null;
    this.svg.classList.toggle('has-tiles', !!this.tileUrl);
    this.schedule();
  }

  drawTiles() {
    if (!this.tileUrl) return;
    const [w, h] = this.size();
    const z = Math.max(3, Math.min(18, Math.round(BASE_ZOOM + Math.log2(this.k))));
    const size = 256 * 2 ** (BASE_ZOOM - z);
    const x0 = (-this.tx / this.k) + this.origin[0];
    const y0 = (-this.ty / this.k) + this.origin[1];
    const x1 = x0 + w / this.k;
    const y1 = y0 + h / this.k;
    const n = 2 ** z;
    const want = new Set();
    for (let ty = Math.max(0, Math.floor(y0 / size)); ty <= Math.min(n - 1, Math.floor(y1 / size)); ty++) {
      for (let tx = Math.floor(x0 / size); tx <= Math.floor(x1 / size); tx++) {
        const wx = ((tx % n) + n) % n;
        const key = `${z}/${tx}/${ty}`;
        want.add(key);
        if (this.tiles.has(key)) continue;
        const href = this.tileUrl.replace('{z}', z).replace('{x}', wx).replace('{y}', ty).replace('{s}', 'abc'[(wx + ty) % 3]);
        const img = svg('image', {
          href, x: tx * size - this.origin[0], y: ty * size - this.origin[1],
          width: size + size / 256, height: size + size / 256, preserveAspectRatio: 'none',
        });
        img.addEventListener('error', () => img.remove(), { once: true });
        this.tiles.set(key, img);
        this.tilesLayer.append(img);
      }
    }
    for (const [key, img] of this.tiles) {
      if (!want.has(key)) { img.remove(); this.tiles.delete(key); }
    }
  }

  // -- tooltip

  showTooltip(id) {
    const m = this.markers.get(id);
    const pos = this.screenOf(id);
    if (!m || !pos || !this.tooltip) return;
    const s = m.station;
    const [zh, latin] = nameLines(s.name);
    const c = s.connectors;
    this.tooltip.replaceChildren();
    const a = document.createElement('div');
    a.className = 'zh';
    a.textContent = zh;
    const b = document.createElement('div');
    b.className = 'sub';
    b.textContent = [latin, [s.highway, directionLabel(s.direction)].filter(Boolean).join(' ')].filter(Boolean).join(' · ');
    const d = document.createElement('div');
    d.textContent = `${c.available} free · ${c.charging} charging · ${c.occupied} occupied${c.faulted ? ` · ${c.faulted} faulted` : ''}${c.offline ? ` · ${c.offline} offline` : ''}`;
    this.tooltip.append(a, b, d);
    this.tooltip.hidden = false;
    const [w] = this.size();
    const tw = this.tooltip.offsetWidth;
    const left = Math.min(Math.max(8, pos[0] + 12), w - tw - 8);
    this.tooltip.style.left = `${left}px`;
    this.tooltip.style.top = `${pos[1] + 12}px`;
  }

  hideTooltip() {
    if (this.tooltip && !this.tooltip.hidden) this.tooltip.hidden = true;
  }

  // -- input: mouse, touch, pen, keyboard

  bindInput() {
    const el = this.svg;
    const pointers = new Map();
    let drag = null;
    let pinch = null;
    let downMarker = null;
    let moved = 0;

    const local = (e) => {
      const r = el.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };

    el.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 && e.pointerType === 'mouse') return;
      pointers.set(e.pointerId, local(e));
      downMarker = e.target.closest?.('.marker')?.dataset.id || null;
      moved = 0;
      if (pointers.size === 1) {
        drag = { p: local(e), tx: this.tx, ty: this.ty };
      } else if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        pinch = { d: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, k: this.k, mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], tx: this.tx, ty: this.ty };
        drag = null;
        downMarker = null;
      }
    });

    el.addEventListener('pointermove', (e) => {
      if (!pointers.has(e.pointerId)) {
        const id = e.target.closest?.('.marker')?.dataset.id;
        if (id) this.showTooltip(id); else this.hideTooltip();
        return;
      }
      const p = local(e);
      pointers.set(e.pointerId, p);
      if (pinch && pointers.size >= 2) {
        const [a, b] = [...pointers.values()];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
        const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
        const k = Math.min(this.maxK, Math.max(this.minK, pinch.k * (d / pinch.d)));
        const f = k / pinch.k;
        this.k = k;
        this.userMoved = true;
        this.tx = mid[0] - (pinch.mid[0] - pinch.tx) * f;
        this.ty = mid[1] - (pinch.mid[1] - pinch.ty) * f;
        this.schedule();
      } else if (drag) {
        const dx = p[0] - drag.p[0];
        const dy = p[1] - drag.p[1];
        moved = Math.max(moved, Math.hypot(dx, dy));
        if (moved > 4) {
          if (!el.hasPointerCapture(e.pointerId)) el.setPointerCapture(e.pointerId);
          el.classList.add('dragging');
          this.userMoved = true;
          this.tx = drag.tx + dx;
          this.ty = drag.ty + dy;
          this.schedule();
        }
      }
    });

    const end = (e) => {
      if (!pointers.has(e.pointerId)) return;
      pointers.delete(e.pointerId);
      if (e.type === 'pointerup' && downMarker && moved <= 4 && !pinch) {
        const id = e.target.closest?.('.marker')?.dataset.id;
        if (id === downMarker) this.onSelect(id);
      }
      if (pointers.size < 2) pinch = null;
      if (pointers.size === 1) {
        const [p] = pointers.values();
        drag = { p, tx: this.tx, ty: this.ty };
        moved = 5; // a finger left after a pinch does not select
      } else if (pointers.size === 0) {
        drag = null;
        downMarker = null;
        el.classList.remove('dragging');
      }
    };
    el.addEventListener('pointerup', end);
    el.addEventListener('pointercancel', end);
    el.addEventListener('pointerleave', () => this.hideTooltip());

    el.addEventListener('wheel', (e) => {
      e.preventDefault();
      const scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
      const [x, y] = local(e);
      this.zoomAt(Math.exp(-e.deltaY * scale * 0.0018), x, y);
    }, { passive: false });

    el.addEventListener('dblclick', (e) => {
      if (e.target.closest?.('.marker')) return;
      const [x, y] = local(e);
      this.zoomAt(e.shiftKey ? 0.5 : 2, x, y);
    });

    el.addEventListener('keydown', (e) => {
      const marker = e.target.closest?.('.marker');
      if (marker && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        this.onSelect(marker.dataset.id);
        return;
      }
      const step = 60;
      const keys = {
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
        '+': () => this.zoomBy(1.4), '=': () => this.zoomBy(1.4), '-': () => this.zoomBy(1 / 1.4),
        0: () => this.fit(),
      };
      if (keys[e.key] && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        keys[e.key]();
      }
    });

    el.addEventListener('focusin', (e) => {
      const id = e.target.closest?.('.marker')?.dataset.id;
      if (id) this.showTooltip(id);
    });
    el.addEventListener('focusout', () => this.hideTooltip());
  }
}
