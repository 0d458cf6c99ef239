// The station card: a service area's nearby stations with live availability, distances and
// amenities; for a phone, and printable (print CSS in queue.css).

const station = new URLSearchParams(location.search).get('station') || '';
const $ = (id) => document.getElementById(id);

const WHERE = { downstream: 'ahead', opposite_direction: 'opposite side', nearby: 'nearby', here: 'here' };

async function load() {
  const r = await fetch(`/api/v1/public/stations/${encodeURIComponent(station)}/card`);
  const c = await r.json();
  if (!r.ok) {
    $('here').textContent = c?.message || `HTTP ${r.status}`;
    return;
  }
  const s = c.station;
  $('here').textContent = `${s.name} · ${s.available}/${s.total} free${s.waiting ? ` · ${s.waiting} waiting` : ''}`;
  $('amenities').textContent = s.amenities.join(' · ');
  const rows = c.nearby.map((n) => {
    const tr = document.createElement('tr');
    for (const v of [n.name, WHERE[n.relation] || n.relation, n.distance_km, `${n.available}/${n.total}`, n.waiting, n.amenities.join(', ')]) {
      const td = document.createElement('td');
      td.textContent = v ?? '';
      tr.append(td);
    }
    return tr;
  });
  $('rows').replaceChildren(...rows);
  $('stamp').textContent = `Live at ${new Date(c.at).toLocaleString()}`;
  document.body.dataset.ready = 'true';
}

$('print').addEventListener('click', () => window.print());
load();
setInterval(load, 15000);
