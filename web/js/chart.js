// A small SVG chart of busy connectors over time, from `GET /stations/{id}/history`.

import { formatClock } from './names.js';

const NS = 'http://www.w3.org/2000/svg';

function node(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

export function renderChart(container, history) {
  const w = Math.max(260, container.clientWidth || 380);
  const h = Math.max(120, container.clientHeight || 150);
  const m = { l: 28, r: 8, t: 10, b: 20 };
  const iw = w - m.l - m.r;
  const ih = h - m.t - m.b;
  const root = node('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img' });
  const pts = history?.points || [];
  const cap = history?.connectors || 0;
  const maxY = Math.max(2, cap, ...pts.map((p) => p.busy_peak));
  const desc = pts.length
    ? `Busy connectors over the last ${Math.round(pts.length * history.bucket_s / 3600)} hours: now ${pts[pts.length - 1].busy} of ${cap}, peak ${Math.max(...pts.map((p) => p.busy_peak))}`
    : 'No status history yet';
  root.setAttribute('aria-label', desc);

  const y = (v) => m.t + ih - (v / maxY) * ih;
  const x = (i) => m.l + (pts.length <= 1 ? iw : (i / (pts.length - 1)) * iw);

  const ticks = maxY <= 4 ? maxY : 4;
  for (let i = 0; i <= ticks; i++) {
    const v = Math.round((maxY * i) / ticks);
    root.append(node('line', { x1: m.l, x2: w - m.r, y1: y(v), y2: y(v), class: 'grid' }));
    root.append(node('text', { x: m.l - 6, y: y(v) + 3.5, 'text-anchor': 'end', class: 'axis' }, v));
  }
  if (!pts.length) {
    root.append(node('text', { x: m.l + iw / 2, y: m.t + ih / 2, 'text-anchor': 'middle', class: 'empty' }, 'No status history yet'));
    container.replaceChildren(root);
    return;
  }
  // Time labels on whole hours (or every few hours for long periods).
  const spanH = (pts.length * history.bucket_s) / 3600;
  const everyH = spanH <= 6 ? 1 : spanH <= 12 ? 2 : 4;
  pts.forEach((p, i) => {
    const d = new Date(p.at);
    if (d.getMinutes() === 0 && d.getHours() % everyH === 0 && i > 0) {
      root.append(node('text', { x: x(i), y: h - 5, 'text-anchor': 'middle', class: 'axis' }, formatClock(p.at)));
      root.append(node('line', { x1: x(i), x2: x(i), y1: m.t + ih, y2: m.t + ih + 3, class: 'grid' }));
    }
  });
  if (cap > 0) {
    root.append(node('line', { x1: m.l, x2: w - m.r, y1: y(cap), y2: y(cap), class: 'cap' }));
    root.append(node('text', { x: w - m.r, y: y(cap) - 4, 'text-anchor': 'end', class: 'cap-label' }, `${cap} connectors`));
  }
  // Step lines: a count holds until the next bucket.
  let line = '';
  let peak = '';
  pts.forEach((p, i) => {
    const x0 = x(i);
    line += `${i ? 'L' : 'M'}${x0.toFixed(1)},${y(p.busy).toFixed(1)}`;
    peak += `${i ? 'L' : 'M'}${x0.toFixed(1)},${y(p.busy_peak).toFixed(1)}`;
  });
  const area = `${line}L${x(pts.length - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z`;
  root.append(node('path', { d: area, class: 'area' }));
  root.append(node('path', { d: peak, class: 'peak' }));
  root.append(node('path', { d: line, class: 'line' }));
  container.replaceChildren(root);
}
