// The dispatcher board: open cases by priority and SLA time left; a case's proposed crew is
// confirmed with one click, or another crew picked.

import { api, send, el, stateBadge, when, slaText, byPriority, KIND, takeToken, whoAmI, showError, showOk, timeline, throttle } from './cases.js';
import { openEvents, token } from './api.js';

const $ = (id) => document.getElementById(id);
let selected = null;
let proposal = null;

async function refresh() {
  const cases = (await api('/cases?state=open')).sort(byPriority);
  $('count').textContent = `(${cases.length})`;
  $('board-empty').hidden = cases.length > 0;
  $('board').tBodies[0].replaceChildren(...cases.map((c) => el('tr', {
    'data-case': c.id, 'data-state': c.state, tabindex: '0', 'aria-selected': selected === c.id ? 'true' : 'false',
    onclick: () => select(c.id), onkeydown: (e) => { if (e.key === 'Enter') select(c.id); },
  },
  el('td', { class: `prio-${c.priority}`, text: c.priority }),
  el('td', {}, el('div', { text: `#${c.id} ${KIND[c.kind] || c.kind}` }), el('div', { class: 'sub', text: c.title })),
  el('td', {}, el('div', { text: c.station_id }), el('div', { class: 'sub', text: c.charger_id || '' })),
  el('td', {}, stateBadge(c.state)),
  el('td', { text: c.crew_id || '–' }),
  el('td', {}, c.sla_breached ? el('span', { class: 'breached', text: slaText(c) }) : slaText(c)))));
  if (selected != null) await showCase(selected).catch(() => {});
}

async function select(id) {
  selected = id;
  document.querySelectorAll('#board tbody tr').forEach((tr) => tr.setAttribute('aria-selected', Number(tr.dataset.case) === id ? 'true' : 'false'));
  $('d-msg').textContent = '';
  await showCase(id);
}

async function showCase(id) {
  const [c, p] = await Promise.all([api(`/cases/${id}`), api(`/cases/${id}/proposals`)]);
  if (selected !== id) return;
  const d = $('detail');
  d.hidden = false;
  d.dataset.case = c.id;
  d.dataset.state = c.state;
  $('d-title').textContent = `#${c.id} · ${c.title}`;
  $('d-state').replaceChildren(stateBadge(c.state));
  $('d-meta').textContent = [c.station_id, c.charger_id, c.connector_id ? `connector ${c.connector_id}` : null, `opened ${when(c.opened_at)}`, slaText(c)].filter(Boolean).join(' · ');
  $('d-desc').textContent = c.description || '';
  proposal = p.proposed;
  const assignable = ['new', 'assigned', 'en_route', 'on_site'].includes(c.state);
  $('proposals').replaceChildren(...p.crews.map((cr, i) => el('div', { class: `proposal${i === 0 ? ' best' : ''}`, 'data-crew': cr.crew_id },
    el('div', {}, el('div', { class: 'name', text: cr.crew_name }), el('div', { class: 'sub', text: cr.reason })),
    el('button', { class: 'btn', type: 'button', disabled: !assignable || c.crew_id === cr.crew_id, onclick: () => assign(cr.crew_id) },
      c.crew_id === cr.crew_id ? 'Assigned' : 'Assign'))));
  if (!p.crews.length) $('proposals').replaceChildren(el('p', { class: 'empty', text: 'No crew defined.' }));
  $('confirm').disabled = !assignable || !proposal || c.crew_id === proposal;
  $('close').disabled = c.state === 'closed';
  $('d-timeline').replaceChildren(timeline(c.timeline));
}

async function assign(crew) {
  try {
    const c = await send('POST', `/cases/${selected}/actions/assign`, { crew_id: crew });
    showOk($('d-msg'), `Assigned to ${c.crew_id}.`);
    await refresh();
  } catch (e) { showError($('d-msg'), e); }
}

async function closeCase() {
  try {
    await send('POST', `/cases/${selected}/actions/close`, { note: 'closed from the dispatch board' });
    showOk($('d-msg'), 'Closed.');
    await refresh();
  } catch (e) { showError($('d-msg'), e); }
}

async function exportCsv() {
  try {
    const res = await fetch('/api/v1/cases/stats.csv', { headers: { Authorization: `Bearer ${token()}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: 'case-stats.csv' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) { showError($('board-msg'), e); }
}

async function main() {
  takeToken();
  try {
    await whoAmI($('who'));
    await refresh();
  } catch (e) {
    showError($('who'), e);
    return;
  }
  $('confirm').addEventListener('click', () => proposal && assign(proposal));
  $('close').addEventListener('click', closeCase);
  $('export').addEventListener('click', exportCsv);
  const later = throttle(() => refresh().catch(() => {}), 500);
  openEvents({ case_changed: later }, () => {});
  setInterval(later, 15000);
  document.body.dataset.ready = 'true';
}

main();
