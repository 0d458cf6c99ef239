// The printable station plan: `/plan?station=ID&from=YYYY-MM-DD&to=YYYY-MM-DD`, read from
// `/api/v1/stations/{id}/plan` with the operations map's token (kept in this tab).

import { takeToken, api } from './api.js';
import { el, nameLines } from './names.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const fmt1 = (v) => (Math.round(v * 10) / 10).toFixed(1);
const pct = (p) => `${Math.round(100 * p)}%`;
const local = (iso) => new Date(iso).toLocaleString([], { weekday: 'short', day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit' });

function fail(message) {
  $('plan-error').textContent = message;
  $('plan-error').hidden = false;
  $('plan-meta').textContent = '';
  document.body.dataset.ready = 'error';
}

async function load() {
  for (const [k, id] of [['station', 'f-station'], ['from', 'f-from'], ['to', 'f-to'], ['target_wait_minutes', 'f-wait']]) {
    if (params.get(k)) $(id).value = params.get(k);
  }
  if (!takeToken()) { fail('No API token in this tab: open the plan from the operations map, or add #token=… to the address.'); return; }
  const station = params.get('station');
  if (!station || !params.get('from') || !params.get('to')) { $('plan-meta').textContent = 'Choose a station and a period.'; return; }
  const q = new URLSearchParams({ from: params.get('from'), to: params.get('to') });
  if (params.get('target_wait_minutes')) q.set('target_wait_minutes', params.get('target_wait_minutes'));
  let plan;
  try {
    plan = await api(`/stations/${encodeURIComponent(station)}/plan?${q}`);
  } catch (e) {
    fail(e.message || String(e));
    return;
  }
  const [zh, latin] = nameLines(plan.name);
  $('plan-title').textContent = `Plan: ${zh || latin}${latin && zh ? ` (${latin})` : ''}`;
  document.title = `Plan ${plan.station_id} ${plan.from}–${plan.to} · chargeops`;
  $('plan-meta').textContent = `${[plan.highway, plan.direction].filter(Boolean).join(' ')} · ${plan.connectors} connectors · ${plan.from} to ${plan.to} · made ${local(plan.origin)} · target wait ${plan.params.target_wait_minutes} min`;
  const rows = [
    ['Hours short of capacity', `${plan.short_hours} of ${plan.hours.length}`],
    ['Worst hour', plan.peak_at ? `${local(plan.peak_at)} (+${plan.peak_extra_connectors} connectors)` : '—'],
    ['Mobile units', `${plan.mobile_units} (${plan.params.unit_guns} × ${plan.params.unit_gun_kw} kW each)`],
    ['or robot hours', `${fmt1(plan.robot_hours)} (${plan.params.robot_kwh_per_hour} kWh an hour each)`],
    ['Expected arrivals', Math.round(plan.expected_arrivals).toString()],
    ['Mean session', `${Math.round(plan.mean_service_minutes)} min`],
  ];
  $('summary').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  $('advice').replaceChildren(...plan.advice.map((a) => el('li', { text: a })));
  $('neighbours').replaceChildren(...plan.neighbours.map((n) => el('tr', {},
    el('td', { text: n.name }), el('td', { text: n.relation.replace('_', ' ') }), el('td', { class: 'num', text: fmt1(n.distance_km) }),
    el('td', { class: 'num', text: pct(n.probability_of_queue) }), el('td', { class: 'num', text: fmt1(n.spare_connectors) }),
    el('td', { text: n.recommended ? 'recommended' : '' }))));
  $('hours').replaceChildren(...plan.hours.map((h) => el('tr', { class: h.extra_connectors > 0 ? 'short' : '' },
    el('td', { text: local(h.at) }),
    el('td', { class: 'num', text: `${fmt1(h.arrivals_p50)} / ${fmt1(h.arrivals_p90)}` }),
    el('td', { class: 'num', text: `${fmt1(h.busy_connectors_p50)} / ${fmt1(h.busy_connectors_p90)}` }),
    el('td', { class: 'num', text: pct(h.probability_of_queue) }),
    el('td', { class: 'num', text: Math.round(Math.min(h.expected_wait_minutes, 999)).toString() }),
    el('td', { class: 'num', text: fmt1(h.capacity_gap_cars_per_hour) }),
    el('td', { class: 'num', text: String(h.extra_connectors) }),
    el('td', { class: 'num', text: String(h.mobile_units) }),
    el('td', { class: 'num', text: fmt1(h.robot_hours) }))));
  $('plan-body').hidden = false;
  document.body.dataset.ready = 'true';
}

$('print').addEventListener('click', () => window.print());
load();
