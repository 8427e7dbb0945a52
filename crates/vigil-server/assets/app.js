// vigil's dashboard: plain JavaScript, no build step. It signs in with a token (kept by the
// server in an HttpOnly cookie), then reads the JSON API and the /api/events stream.
'use strict';

const $ = (selector) => document.querySelector(selector);

// Creates an element: el('td', {class: 'n', text: '3'}, child, …).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// Every call sends the CSRF header the server asks of cookie-authenticated changes.
async function api(path, {method = 'GET', json, body, headers = {}} = {}) {
  const init = {method, credentials: 'same-origin', headers: {'x-vigil-csrf': '1', ...headers}};
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const e = await response.json();
      if (e.error && e.error.message) message = e.error.message;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

async function ndjson(response) {
  const text = await response.text();
  const rows = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const row = JSON.parse(line);
    if (row.error) throw new Error(row.error.message);
    rows.push(row);
  }
  return rows;
}

// Notices about a listener (a retry's answer) kept across the live redraws of its card.
const state = {me: null, events: null, listeners: [], page: 0, pageSize: 24, notices: {}};
const canWrite = () => state.me && (state.me.scope === 'write' || state.me.scope === 'admin');
const enc = encodeURIComponent;

// ---- sign-in -----------------------------------------------------------------------------

async function start() {
  try {
    state.me = await (await api('/api/session')).json();
    showApp();
  } catch (_) {
    showSignIn();
  }
}

function showSignIn() {
  $('#sign-in').hidden = false;
  $('#tabs').hidden = true;
  $('#sign-out').hidden = true;
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('#who').textContent = '';
}

$('#sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('#sign-in-error').textContent = '';
  try {
    state.me = await (await api('/api/session', {method: 'POST', json: {token: $('#token').value}})).json();
    $('#token').value = '';
    showApp();
  } catch (e) {
    $('#sign-in-error').textContent = e.message;
  }
});

$('#sign-out').addEventListener('click', async () => {
  await api('/api/session', {method: 'DELETE'}).catch(() => {});
  if (state.events) state.events.close();
  state.me = null;
  showSignIn();
});

function showApp() {
  $('#sign-in').hidden = true;
  $('#tabs').hidden = false;
  $('#sign-out').hidden = false;
  $('#who').textContent = `${state.me.name} (${state.me.scope})`;
  show('overview');
  connectEvents();
  loadCollections();
  loadModels();
}

// ---- navigation --------------------------------------------------------------------------

function show(view) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== view;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.view === view);
  if (view === 'gallery') prepareGallery();
}
for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => show(b.dataset.view));

// ---- overview ----------------------------------------------------------------------------

let collectionsLoaded = 0;
async function loadCollections() {
  collectionsLoaded = Date.now();
  try {
    const list = await (await api('/api/collections')).json();
    const body = $('#collections tbody');
    body.replaceChildren(...list.map((c) => el('tr', {'data-collection': c.name},
      el('td', {text: c.name}), el('td', {class: 'n', text: String(c.count)}))));
    $('#collection-names').replaceChildren(...list.map((c) => el('option', {value: c.name})));
    return list;
  } catch (e) {
    return [];
  }
}

async function loadModels() {
  const box = $('#models');
  try {
    const models = await (await api('/api/models')).json();
    box.replaceChildren();
    for (const m of models) {
      const latest = await (await api(`/api/models/${enc(m.identifier)}`)).json();
      const card = el('div', {class: 'model', 'data-model': m.identifier},
        el('h3', {text: `${m.identifier}`}),
        el('p', {class: 'muted', text: `versions ${m.versions.join(', ')} · latest v${latest.version} · ${latest.record.kind ? latest.record.kind.type : ''}`}));
      card.append(...metricCharts(latest.record.metric_values || {}));
      box.append(card);
    }
    if (!models.length) box.append(el('p', {class: 'muted', text: 'No models yet.'}));
  } catch (e) {
    box.replaceChildren(el('p', {class: 'error', text: e.message}));
  }
}

// One chart per validation set (the prefix of `set/metric` keys; bare keys are training's),
// each metric of the set a line on its own scale.
function metricCharts(values) {
  const sets = new Map();
  for (const [key, series] of Object.entries(values)) {
    const [set, metric] = key.includes('/') ? key.split('/', 2) : ['training', key];
    if (!sets.has(set)) sets.set(set, []);
    sets.get(set).push([metric, series]);
  }
  const charts = [];
  for (const [set, metrics] of sets) {
    const w = 320, h = 120, pad = 6;
    const chart = svg('svg', {viewBox: `0 0 ${w} ${h}`, class: 'chart', role: 'img', 'aria-label': `${set} metrics`, 'data-set': set});
    chart.append(svg('rect', {x: 0, y: 0, width: w, height: h, class: 'frame'}));
    const legend = el('p', {class: 'legend'});
    metrics.forEach(([metric, series], i) => {
      const finite = series.filter(Number.isFinite);
      if (!finite.length) return;
      const lo = Math.min(...finite), hi = Math.max(...finite);
      const span = hi - lo || 1;
      const points = series.map((v, j) => {
        const x = pad + (series.length > 1 ? j / (series.length - 1) : 0.5) * (w - 2 * pad);
        const y = h - pad - ((v - lo) / span) * (h - 2 * pad);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      chart.append(svg('polyline', {points: points.join(' '), class: `line c${i % 4}`, 'data-metric': metric}));
      const last = series[series.length - 1];
      legend.append(el('span', {class: `key c${i % 4}`, text: `${metric}: ${Number.isFinite(last) ? last.toFixed(4) : last} (${series.length} points)`}));
    });
    charts.push(el('figure', {}, el('figcaption', {text: set}), chart, legend));
  }
  return charts;
}

function connectEvents() {
  if (state.events) state.events.close();
  const source = new EventSource('/api/events');
  state.events = source;
  source.addEventListener('open', () => { $('#live').textContent = 'live'; });
  source.addEventListener('error', () => { $('#live').textContent = 'reconnecting…'; });
  source.addEventListener('state', (event) => {
    const snapshot = JSON.parse(event.data);
    state.listeners = snapshot.listeners;
    renderListeners(snapshot.listeners);
    renderJobs(snapshot.jobs);
    // Counts move with the listeners' work; reread them at most every two seconds.
    if (Date.now() - collectionsLoaded > 2000) loadCollections();
  });
}

function renderListeners(listeners) {
  const box = $('#listeners');
  if (!listeners.length) {
    box.replaceChildren(el('p', {class: 'muted', text: 'No listeners yet.'}));
    return;
  }
  box.replaceChildren(...listeners.map((l) => {
    const job = l.backfill;
    const done = job ? job.done + job.failed : 0;
    const total = job ? job.total : 0;
    const percent = total ? Math.min(100, (100 * done) / total) : 100;
    const fill = el('div', {class: 'fill'});
    fill.style.width = `${percent}%`;
    const bar = el('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(total), 'aria-valuenow': String(done)}, fill);
    const outputs = l.outputs.map((o) => `v${o.model_version}: ${o.count}`).join(', ') || 'none';
    const card = el('div', {class: 'listener', 'data-listener': l.name},
      el('h3', {text: l.name}),
      el('p', {class: 'muted', text: `model ${l.model} v${l.model_version} on ${l.collection}.${l.key}`}),
      bar,
      el('p', {class: 'progress-text', text: job ? `backfill ${done} / ${total} (${job.status})` : 'no backfill'}),
      el('dl', {},
        el('dt', {text: 'queued'}), el('dd', {class: 'pending', text: String(l.pending)}),
        el('dt', {text: 'outputs'}), el('dd', {class: 'outputs', text: outputs}),
        el('dt', {text: 'per second'}), el('dd', {text: l.throughput.toFixed(1)}),
        el('dt', {text: 'retrying'}), el('dd', {class: 'retrying', text: String(l.retrying)}),
        el('dt', {text: 'parked'}), el('dd', {class: 'parked', text: String(l.parked)})));
    if (l.retrying + l.parked > 0) {
      const errors = el('ul', {class: 'errors'});
      card.append(errors);
      loadErrors(l.name, errors);
      if (canWrite() && l.parked > 0) {
        card.append(el('button', {type: 'button', class: 'retry', onclick: () => retry(l.name)}, 'Retry parked'));
      }
    }
    const notice = state.notices[l.name];
    if (notice) card.append(el('p', {class: notice.error ? 'error' : 'notice', text: notice.text}));
    return card;
  }));
}

async function loadErrors(listener, list) {
  try {
    const errors = await (await api(`/api/errors?listener=${enc(listener)}&limit=10`)).json();
    list.replaceChildren(...errors.map((e) => el('li', {},
      el('code', {text: JSON.stringify(e.doc_id)}), ` ${e.parked ? 'parked' : 'retrying'} after ${e.attempts} attempts: `,
      el('span', {class: 'reason', text: e.error}))));
  } catch (e) {
    list.replaceChildren(el('li', {class: 'error', text: e.message}));
  }
}

async function retry(listener) {
  try {
    const r = await (await api(`/api/listeners/${enc(listener)}/retry`, {method: 'POST'})).json();
    state.notices[listener] = {text: `${r.queued} documents queued again`};
  } catch (e) {
    state.notices[listener] = {text: e.message, error: true};
  }
  renderListeners(state.listeners);
}

function renderJobs(jobs) {
  $('#jobs tbody').replaceChildren(...jobs.map((j) => el('tr', {'data-job': j.id, class: j.status},
    el('td', {text: j.kind}), el('td', {text: j.target}), el('td', {text: j.status}),
    el('td', {class: 'n', text: String(j.done)}), el('td', {class: 'n', text: String(j.failed)}),
    el('td', {class: 'n', text: String(j.total)}), el('td', {class: 'n', text: j.throughput.toFixed(1)}),
    el('td', {text: new Date(j.started * 1000).toLocaleTimeString()}))));
}

// ---- gallery -----------------------------------------------------------------------------

async function prepareGallery() {
  const select = $('#gallery-collection');
  if (!select.options.length) {
    const list = await loadCollections();
    select.replaceChildren(...list.map((c) => el('option', {value: c.name, text: c.name})));
    state.page = 0;
    await loadGallery();
  }
  examples();
}

// Example filters for the chosen collection's listeners: the model's mistakes, by class.
function examples() {
  const collection = $('#gallery-collection').value;
  const box = $('#gallery-examples');
  box.replaceChildren();
  for (const l of state.listeners.filter((x) => x.collection === collection && !x.key.startsWith('_outputs'))) {
    const output = `$_outputs.${l.key}.${l.model}`;
    const mistakes = {$expr: {$ne: [output, '$class']}};
    box.append(el('button', {type: 'button', class: 'example', onclick: () => {
      $('#gallery-filter').value = JSON.stringify(mistakes);
      state.page = 0;
      loadGallery();
    }}, `${l.model}'s mistakes`));
  }
}

$('#gallery-collection').addEventListener('change', () => { state.page = 0; examples(); loadGallery(); });
$('#gallery-form').addEventListener('submit', (event) => { event.preventDefault(); state.page = 0; loadGallery(); });
$('#prev').addEventListener('click', () => { if (state.page > 0) { state.page -= 1; loadGallery(); } });
$('#next').addEventListener('click', () => { state.page += 1; loadGallery(); });

async function loadGallery() {
  const collection = $('#gallery-collection').value;
  const error = $('#gallery-error');
  error.textContent = '';
  if (!collection) return;
  let filter;
  try {
    filter = JSON.parse($('#gallery-filter').value || '{}');
  } catch (e) {
    error.textContent = `The filter is not valid JSON: ${e.message}`;
    return;
  }
  try {
    const skip = state.page * state.pageSize;
    const [count, docs] = await Promise.all([
      api(`/api/collections/${enc(collection)}/count?filter=${enc(JSON.stringify(filter))}`).then((r) => r.json()),
      api(`/api/collections/${enc(collection)}/find`, {method: 'POST', json: {filter, skip, limit: state.pageSize, binary: 'url'}}).then(ndjson),
    ]);
    const pages = Math.max(1, Math.ceil(count.count / state.pageSize));
    $('#page-info').textContent = `page ${state.page + 1} of ${pages} · ${count.count} documents`;
    $('#prev').disabled = state.page === 0;
    $('#next').disabled = state.page + 1 >= pages;
    $('#cards').replaceChildren(...docs.map(card));
  } catch (e) {
    error.textContent = e.message;
    $('#cards').replaceChildren();
  }
}

// Flattens a document's plain fields to `path: value` lines, binary values aside.
function flatten(value, prefix, out) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    if (value.$url) { out.images.push([prefix, value]); return; }
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.fields.push([prefix, JSON.stringify(value)]);
  }
}

function card(doc) {
  const out = {images: [], fields: []};
  flatten(doc, '', out);
  const node = el('figure', {class: 'card', 'data-id': JSON.stringify(doc._id)});
  for (const [path, image] of out.images.filter(([, v]) => v.$codec.startsWith('image/'))) {
    node.append(el('img', {src: image.$url, alt: path, loading: 'lazy'}));
  }
  const caption = el('figcaption');
  for (const [path, value] of out.fields) {
    const cls = path.startsWith('_outputs.') ? 'output' : (path.startsWith('_') ? 'meta' : 'field');
    caption.append(el('div', {class: cls, 'data-path': path}, el('span', {class: 'k', text: path}), ' ', el('span', {class: 'v', text: value})));
  }
  node.append(caption);
  return node;
}

// ---- upload ------------------------------------------------------------------------------

// PNG files go as they are; other image types are turned into PNG in the page first.
async function pngBytes(file) {
  if (file.type === 'image/png') return new Uint8Array(await file.arrayBuffer());
  const bitmap = await createImageBitmap(file);
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d').drawImage(bitmap, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  return new Uint8Array(await blob.arrayBuffer());
}

function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

$('#upload-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = $('#upload-error');
  error.textContent = '';
  const file = $('#upload-file').files[0];
  const collection = $('#upload-collection').value.trim();
  const field = $('#upload-field').value.trim();
  if (!file) return;
  try {
    const bytes = await pngBytes(file);
    const doc = {[field]: {$codec: 'image/png', $base64: base64(bytes)}};
    const started = performance.now();
    const inserted = await (await api(`/api/collections/${enc(collection)}/documents`, {method: 'POST', json: doc})).json();
    const id = inserted.inserted_ids[0];
    $('#upload-result').hidden = false;
    $('#upload-preview').src = URL.createObjectURL(new Blob([bytes], {type: 'image/png'}));
    $('#upload-id').textContent = JSON.stringify(id);
    $('#upload-outputs').textContent = '';
    $('#upload-status').textContent = 'stored; waiting for the listeners…';
    await waitForOutputs(collection, id, started);
  } catch (e) {
    error.textContent = e.message;
  }
});

async function waitForOutputs(collection, id, started) {
  const url = `/api/collections/${enc(collection)}/documents/${enc(String(id))}?binary=url`;
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const doc = await (await api(url)).json();
    if (doc._outputs) {
      const ms = Math.round(performance.now() - started);
      $('#upload-status').textContent = `predicted in ${ms} ms`;
      const lines = [];
      const out = {images: [], fields: []};
      flatten(doc._outputs, '', out);
      for (const [path, value] of out.fields) lines.push(`${path}: ${value}`);
      $('#upload-outputs').textContent = lines.join('\n');
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  $('#upload-status').textContent = 'no prediction after 30 s: is a `vigil worker` running, and a listener on this collection?';
}

start();
