// The crew's phone page: my open orders; accept, en route, on site, resolved with a note and
// the parts used; remote reset and unlock through the platform's command path.

import { api, send, el, stateBadge, when, KIND, takeToken, whoAmI, showError, showOk, timeline, throttle } from './cases.js';
import { openEvents } from './api.js';

const $ = (id) => document.getElementById(id);
const open = new Set(); // orders whose timeline is unfolded
// What the crew has typed into a resolve form, by case: a refresh redraws the cards and must not
// lose a half-written note.
const drafts = new Map();

function steps(c) {
  switch (c.state) {
    case 'assigned': {
      const accepted = c.timeline?.some((e) => e.action === 'accept');
      return accepted ? [['en_route', 'En route']] : [['accept', 'Accept'], ['en_route', 'En route']];
    }
    case 'en_route': return [['on_site', 'On site']];
    default: return [];
  }
}

async function act(c, action, body) {
  try {
    await send('POST', `/cases/${c.id}/actions/${action}`, body);
    if (action === 'resolve') drafts.delete(c.id);
    showOk($('msg'), `#${c.id}: ${action.replace('_', ' ')}`);
  } catch (e) { showError($('msg'), e); }
  await refresh(true);
}

async function remote(c, command) {
  try {
    const r = await send('POST', `/cases/${c.id}/remote/${command}`, {});
    showOk($('msg'), `#${c.id}: ${command} → ${r.status}`);
  } catch (e) { showError($('msg'), e); }
  await refresh(true);
}

function card(c) {
  const draft = drafts.get(c.id) || { note: '', parts: '' };
  const keep = (field) => (ev) => { drafts.set(c.id, { ...(drafts.get(c.id) || draft), [field]: ev.target.value }); };
  const resolveForm = el('form', {
    class: 'resolve', hidden: c.state !== 'on_site' && !['assigned', 'en_route'].includes(c.state) ? true : null,
    onsubmit: (ev) => {
      ev.preventDefault();
      const f = ev.currentTarget;
      const parts = f.elements.parts.value.split(',').map((p) => p.trim()).filter(Boolean);
      act(c, 'resolve', { note: f.elements.note.value, parts });
    },
  },
  el('label', { for: `note-${c.id}`, text: 'What was done' }),
  el('textarea', { id: `note-${c.id}`, name: 'note', required: true, maxlength: '4096', text: draft.note, oninput: keep('note') }),
  el('label', { for: `parts-${c.id}`, text: 'Parts used (comma separated)' }),
  el('input', { id: `parts-${c.id}`, name: 'parts', placeholder: 'RCD 40A, fuse', value: draft.parts || null, oninput: keep('parts') }),
  el('div', { class: 'actions' }, el('button', { class: 'btn primary', type: 'submit', text: 'Resolved' })));
  const details = el('details', { open: open.has(c.id) ? true : null, ontoggle: (e) => { if (e.target.open) open.add(c.id); else open.delete(c.id); } },
    el('summary', { class: 'sub', text: 'Timeline' }), timeline(c.timeline || []));
  return el('article', { class: 'order', 'data-case': c.id, 'data-state': c.state },
    el('div', {}, stateBadge(c.state), ' ', el('span', { class: `prio-${c.priority}`, text: c.priority })),
    el('h3', { text: `#${c.id} ${KIND[c.kind] || c.kind}` }),
    el('p', { class: 'sub', text: c.title }),
    el('p', { class: 'sub', text: [c.station_id, c.charger_id, c.connector_id ? `connector ${c.connector_id}` : null].filter(Boolean).join(' · ') }),
    c.description ? el('p', { class: 'sub', text: c.description }) : null,
    el('p', { class: 'sub', text: `opened ${when(c.opened_at)} · SLA ${when(c.sla_due_at)}` }),
    el('div', { class: 'actions' },
      steps(c).map(([a, label]) => el('button', { class: 'btn primary', type: 'button', 'data-action': a, onclick: () => act(c, a) }, label)),
      c.charger_id ? [
        el('button', { class: 'btn', type: 'button', 'data-remote': 'reset', onclick: () => remote(c, 'reset') }, 'Reset charger'),
        el('button', { class: 'btn', type: 'button', 'data-remote': 'unlock-connector', disabled: !c.connector_id, onclick: () => remote(c, 'unlock-connector') }, 'Unlock'),
      ] : null),
    ['assigned', 'en_route', 'on_site'].includes(c.state) ? resolveForm : null,
    details);
}

async function refresh(force = false) {
  const list = await api('/cases?state=open');
  const full = await Promise.all(list.map((c) => api(`/cases/${c.id}`)));
  // Work to do first: on site, en route, assigned; then what waits for verification.
  const order = { on_site: 0, en_route: 1, assigned: 2, resolved: 3, verified: 4, new: 5 };
  full.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) || a.id - b.id);
  // A background refresh keeps what the crew is typing.
  const typing = document.activeElement?.matches?.('form.resolve textarea, form.resolve input');
  if (typing && !force) return;
  // A redraw keeps the caret where the crew was typing.
  const focused = typing ? document.activeElement : null;
  const caret = focused ? [focused.id, focused.selectionStart, focused.selectionEnd] : null;
  $('orders').replaceChildren(...full.map(card));
  if (caret) {
    const again = document.getElementById(caret[0]);
    again?.focus();
    again?.setSelectionRange?.(caret[1], caret[2]);
  }
  $('none').hidden = full.length > 0;
}

async function main() {
  takeToken();
  try {
    await whoAmI($('who'));
    await refresh();
  } catch (e) {
    showError($('msg'), e);
    return;
  }
  const later = throttle(() => refresh().catch(() => {}), 500);
  openEvents({ case_changed: later }, () => {});
  setInterval(later, 20000);
  document.body.dataset.ready = 'true';
}

main();
