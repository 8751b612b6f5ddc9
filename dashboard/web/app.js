// worker serve's page: asks api/data every interval_ms and draws it.
// Plain DOM and Leaflet; every text from the table goes in as textContent.
'use strict';

const state = { data: null, etag: '', selected: null, layer: null, fitted: false, tiles: null };

const map = L.map('map', { worldCopyJump: false, preferCanvas: false }).setView([20, 0], 2);
const graticule = L.layerGroup().addTo(map);
const footprints = L.featureGroup().addTo(map);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

// Graticule: lines every step degrees over the visible area, so the map is
// never blank without tiles.
function drawGraticule() {
  graticule.clearLayers();
  const b = map.getBounds();
  const span = Math.max(b.getEast() - b.getWest(), b.getNorth() - b.getSouth());
  const steps = [90, 45, 30, 20, 10, 5, 2, 1, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001];
  const step = steps.find(s => span / s >= 4) || steps[steps.length - 1];
  const style = { color: '#b0bec5', weight: 1, interactive: false, className: 'graticule' };
  const south = Math.max(-85, b.getSouth()), north = Math.min(85, b.getNorth());
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let x = Math.ceil(b.getWest() / step) * step; x <= b.getEast(); x += step) {
    graticule.addLayer(L.polyline([[south, x], [north, x]], style));
    graticule.addLayer(L.tooltip({ permanent: true, direction: 'right', className: 'graticule-label', interactive: false })
      .setLatLng([south, x]).setContent(x.toFixed(digits) + '°'));
  }
  for (let y = Math.ceil(south / step) * step; y <= north; y += step) {
    graticule.addLayer(L.polyline([[y, b.getWest()], [y, b.getEast()]], style));
    graticule.addLayer(L.tooltip({ permanent: true, direction: 'right', className: 'graticule-label', interactive: false })
      .setLatLng([y, b.getWest()]).setContent(y.toFixed(digits) + '°'));
  }
}
map.on('moveend', drawGraticule);

const legend = L.control({ position: 'bottomright' });
legend.onAdd = () => el('div', { class: 'legend', id: 'legend' });
legend.addTo(map);

function col(name) { return state.data.columns.indexOf(name); }
function cellOf(row, name) { const i = col(name); return i < 0 ? null : row[i]; }

function drawMap(d) {
  footprints.clearLayers();
  const layer = L.geoJSON({ type: 'FeatureCollection', features: d.features }, {
    style: f => ({
      color: f.properties.color, fillColor: f.properties.color, weight: 1.5, fillOpacity: 0.45,
      className: 'footprint status-' + f.properties.status + ' row-' + f.properties.row,
    }),
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 6 }),
    onEachFeature: (f, l) => l.on('click', () => select(f.properties.row)),
  });
  footprints.addLayer(layer);
  if (!state.fitted && d.features.length > 0) {
    map.fitBounds(footprints.getBounds(), { padding: [20, 20], animate: false });
    state.fitted = true;
  }
  if (d.tiles && !state.tiles) {
    state.tiles = L.tileLayer(d.tiles, { attribution: '', maxZoom: 19 }).addTo(map);
    state.tiles.bringToBack();
  }
  const lg = document.getElementById('legend');
  lg.replaceChildren();
  for (const s of d.statuses) {
    const n = d.counts.by_status[s] || 0;
    lg.append(el('div', { 'data-status': s }, el('span', { class: 'swatch', style: 'background:' + d.colors[s] }), s + ' (' + n + ')'));
  }
  const um = document.getElementById('unmapped');
  um.textContent = d.unmapped.length === 0 ? '' :
    d.unmapped.length + ' row(s) not on the map: ' + d.unmapped.slice(0, 5).map(u => 'row ' + (u.row + 1) + ' (' + u.reason + ')').join('; ') +
    (d.unmapped.length > 5 ? '; …' : '');
}

function drawCounts(d) {
  const backends = [...new Set(d.counts.by_backend_and_status.map(c => c.backend_name))].sort();
  const t = document.getElementById('counts');
  t.replaceChildren(el('tr', {}, el('th', {}, 'status'), el('th', { class: 'num' }, 'total'),
    ...backends.map(b => el('th', { class: 'num' }, b || '–'))));
  for (const s of d.statuses) {
    const n = d.counts.by_status[s];
    if (!n) continue;
    const per = b => (d.counts.by_backend_and_status.find(c => c.backend_name === b && c.status === s) || { count: 0 }).count;
    t.append(el('tr', {}, el('td', {}, el('span', { class: 'swatch', style: 'background:' + d.colors[s] }), s),
      el('td', { class: 'num', id: 'count-' + s }, n), ...backends.map(b => el('td', { class: 'num' }, per(b)))));
  }
  t.append(el('tr', {}, el('th', {}, 'all'), el('th', { class: 'num', id: 'count-total' }, d.counts.total)));
}

function fmt(x) { return Number.isInteger(x) ? String(x) : x.toFixed(2); }

function drawTotals(d) {
  const t = document.getElementById('totals');
  t.replaceChildren(el('tr', {}, el('td', {}, 'costs'), el('td', { class: 'num', id: 'total-costs' }, fmt(d.totals.costs))));
  for (const name of ['cpu', 'memory', 'duration']) {
    const sums = d.totals[name];
    const text = Object.keys(sums).sort().map(u => fmt(sums[u]) + ' ' + u).join(', ') || '–';
    t.append(el('tr', {}, el('td', {}, name), el('td', { class: 'num', id: 'total-' + name }, text)));
  }
  if (d.totals.unparsed.length > 0) {
    t.append(el('tr', {}, el('td', {}, 'not counted'), el('td', { class: 'error-text' }, d.totals.unparsed.join('\n'))));
  }
  if (d.bad_times.length > 0) {
    t.append(el('tr', {}, el('td', {}, 'bad times'), el('td', { class: 'error-text' }, d.bad_times.join('\n'))));
  }
}

function drawProgress(d) {
  const svg = document.getElementById('progress');
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  const pts = d.progress;
  if (pts.length === 0) {
    document.getElementById('progress-range').textContent = 'no job started yet';
    return;
  }
  const t0 = Date.parse(pts[0].time), t1 = Math.max(Date.parse(pts[pts.length - 1].time), t0 + 1);
  const max = Math.max(1, d.counts.total);
  const x = t => 5 + 590 * (Date.parse(t) - t0) / (t1 - t0);
  const y = n => 150 - 140 * n / max;
  for (const [key, color] of [['submitted', '#1e88e5'], ['running', '#fb8c00'], ['ended', '#43a047']]) {
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.map(p => x(p.time) + ',' + y(p[key])).join(' '));
    line.setAttribute('fill', 'none'); line.setAttribute('stroke', color); line.setAttribute('stroke-width', 2);
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    line.setAttribute('class', 'progress-' + key);
    svg.append(line);
  }
  document.getElementById('progress-range').textContent =
    pts[0].time + ' → ' + pts[pts.length - 1].time + ', of ' + d.counts.total + ' rows';
}

const failedStatuses = ['error', 'start_failed', 'canceled'];

function drawFailed(d) {
  const q = document.getElementById('filter').value.trim().toLowerCase();
  const body = document.querySelector('#failed tbody');
  body.replaceChildren();
  let shown = 0, all = 0;
  d.rows.forEach((r, i) => {
    if (!failedStatuses.includes(cellOf(r, 'status'))) return;
    all++;
    const cells = [i + 1, cellOf(r, 'id'), cellOf(r, 'backend_name'), cellOf(r, 'status'), cellOf(r, 'updated_at'), cellOf(r, 'last_error')];
    if (q && !cells.some(c => String(c == null ? '' : c).toLowerCase().includes(q))) return;
    shown++;
    const tr = el('tr', { 'data-row': i }, ...cells.map((c, k) => el('td', k === 5 ? { class: 'error-text' } : {}, c)));
    tr.addEventListener('click', () => select(i, true));
    body.append(tr);
  });
  document.getElementById('failed-count').textContent = q ? shown + ' of ' + all : all + ' row(s)';
}
document.getElementById('filter').addEventListener('input', () => state.data && drawFailed(state.data));

const first = ['id', 'backend_name', 'status', 'start_time', 'running_start_time', 'updated_at', 'cpu', 'memory', 'duration', 'costs', 'attempts', 'last_error'];

function select(i, zoom) {
  state.selected = i;
  const d = state.data;
  const r = d.rows[i];
  const panel = document.getElementById('row');
  if (!r) { panel.replaceChildren(el('p', { class: 'muted' }, 'That row is no longer in the table.')); return; }
  const order = [...first.filter(c => col(c) >= 0), ...d.columns.filter(c => !first.includes(c))];
  const t = el('table', { id: 'row-table' });
  for (const c of order) {
    const v = r[col(c)];
    t.append(el('tr', { 'data-column': c }, el('td', {}, c), el('td', c === 'last_error' ? { class: 'error-text' } : {}, v)));
  }
  const links = el('p', { id: 'row-links' });
  const f = d.files[i];
  if (f) {
    if (f.dir) links.append(el('a', { href: f.dir, class: 'results', target: '_blank', rel: 'noopener' }, 'results folder'), ' ');
    if (f.metadata) links.append(el('a', { href: f.metadata, class: 'metadata', target: '_blank', rel: 'noopener' }, 'job metadata'), ' ');
    if (f.error_log) links.append(el('a', { href: f.error_log, class: 'error-log', target: '_blank', rel: 'noopener' }, 'error log'));
  } else {
    links.append(el('span', { class: 'muted' }, 'no downloaded files' + (d.has_root ? '' : ' (start worker serve with --root-dir to link them)')));
  }
  panel.replaceChildren(el('h2', {}, 'Row ' + (i + 1)), links, t);
  footprints.eachLayer(g => g.eachLayer && g.eachLayer(l => {
    if (!l.feature) return;
    const mine = l.feature.properties.row === i;
    l.setStyle({ weight: mine ? 4 : 1.5, color: mine ? '#000' : l.feature.properties.color });
    if (mine) {
      l.bringToFront();
      if (zoom) map.fitBounds((l.getBounds ? l.getBounds() : L.latLngBounds([l.getLatLng()])).pad(2), { maxZoom: 12, animate: false });
    }
  }));
}

function draw(d) {
  state.data = d;
  document.getElementById('table-info').textContent = d.counts.total + ' rows';
  drawMap(d);
  drawCounts(d);
  drawTotals(d);
  drawProgress(d);
  drawFailed(d);
  if (state.selected !== null) select(state.selected, false);
  drawGraticule();
}

async function poll() {
  let interval = state.data ? state.data.interval_ms : 5000;
  try {
    const res = await fetch('api/data', { cache: 'no-cache', headers: state.etag ? { 'If-None-Match': state.etag } : {} });
    if (res.status === 200) {
      state.etag = res.headers.get('ETag') || '';
      const d = await res.json();
      draw(d);
      interval = d.interval_ms;
      document.getElementById('updated').textContent = 'read at ' + d.generated_at;
    } else if (res.status === 304) {
      document.getElementById('updated').textContent = 'unchanged at ' + new Date().toISOString().slice(0, 19) + 'Z';
    } else {
      document.getElementById('updated').textContent = 'cannot read the table: ' + (await res.text());
    }
  } catch (e) {
    document.getElementById('updated').textContent = 'server unreachable: ' + e;
  }
  document.body.dataset.loaded = state.data ? 'true' : 'false';
  setTimeout(poll, interval);
}
drawGraticule();
poll();
