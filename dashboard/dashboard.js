// Keywarden's dashboard: every pool and key at a glance, refreshed every 5 s, with the history
// charts (uPlot, served by the key server) and, with an admin token, the admin actions. It reads
// only the API (the stats never hold a plaintext key) and never asks for a handout. Tokens live
// in sessionStorage and travel as Bearer headers, never in a URL.

import { drawChart } from './charts.js';

const REFRESH_MS = 5000;
const RANGES = [
  ['1h', 'Last hour, per minute'],
  ['24h', 'Last 24 hours, per minute'],
  ['7d', 'Last 7 days, per hour'],
];
const WINDOWS = [
  ['minute', 'perMinute'],
  ['hour', 'perHour'],
  ['day', 'perDay'],
  ['week', 'perWeek'],
  ['month', 'perMonth'],
  ['total', 'total'],
];

const store = window.sessionStorage;
const $ = (id) => document.getElementById(id);
/** `auth`: 'token' when the server wants an API token (from /healthz), 'open' when it does not. */
const state = { admin: false, auth: 'token', pools: new Map(), timer: null };

/** An element with attributes and children (text children become text nodes: no HTML is ever parsed from data). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// ------------------------------------------------------------------ time

function relative(ms, now = Date.now()) {
  const d = ms - now;
  const a = Math.abs(d);
  const [n, unit] =
    a < 60_000
      ? [Math.round(a / 1000), 's']
      : a < 3_600_000
        ? [Math.round(a / 60_000), 'min']
        : a < 86_400_000
          ? [Math.round(a / 3_600_000), 'h']
          : [Math.round(a / 86_400_000), 'd'];
  return d >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

function when(ms) {
  return ms === null || ms === undefined ? '—' : `${new Date(ms).toLocaleString()} (${relative(ms)})`;
}

// ------------------------------------------------------------------ API

function show(text, bad = false) {
  const m = $('message');
  m.hidden = !text;
  m.textContent = text || '';
  m.className = bad ? 'message bad' : 'message';
}

async function call(path, { method = 'GET', body, admin = false } = {}) {
  const token = admin ? store.getItem('kw.adminToken') : store.getItem('kw.token');
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, ok: res.ok, json };
}

/** The server's answer to an admin action, as one line. */
function answer(what, r) {
  if (r.ok) {
    const extra = r.json?.warnings?.length ? ` Warnings: ${r.json.warnings.join('; ')}` : '';
    show(`${what}: done (${r.status}).${extra}`);
  } else show(`${what}: ${r.status} ${r.json?.error ?? ''}: ${r.json?.message ?? 'failed'}`, true);
}

// ------------------------------------------------------------------ sign-in

function showSignin(error = '') {
  $('signin').hidden = false;
  $('signin-error').textContent = error;
  $('signin-form').elements.token.focus();
}

async function checkAdmin() {
  state.admin = false;
  if (!store.getItem('kw.adminToken')) return '';
  const r = await call('/admin/pools', { admin: true });
  if (r.ok) {
    state.admin = true;
    return '';
  }
  if (r.status === 404) return 'This server has no admin API (ADMIN_TOKEN is not set there); admin actions stay off.';
  return `The admin token was refused by the server (${r.status}); admin actions stay off.`;
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const token = form.elements.token.value.trim();
  const adminToken = form.elements.adminToken.value.trim();
  if (token) store.setItem('kw.token', token);
  else store.removeItem('kw.token');
  if (adminToken) store.setItem('kw.adminToken', adminToken);
  else store.removeItem('kw.adminToken');
  form.reset();
  const probe = await call('/api/stats?keys=none');
  if (probe.status === 401) {
    store.removeItem('kw.token');
    showSignin('That API token was refused by the server (401 unauthorized). Check API_TOKENS on the server.');
    return;
  }
  const adminProblem = await checkAdmin();
  $('signin').hidden = true;
  renderSession();
  show(adminProblem, adminProblem !== '');
  for (const p of state.pools.values()) p.section.remove();
  state.pools.clear();
  await refresh();
}

function signOut() {
  store.removeItem('kw.token');
  store.removeItem('kw.adminToken');
  state.admin = false;
  for (const p of state.pools.values()) p.section.remove();
  state.pools.clear();
  renderSession();
  show('Signed out.');
  void refresh();
}

// ------------------------------------------------------------------ a pool

function poolView(name) {
  const view = {
    name,
    sort: { key: 'keyId', dir: 1 },
    filter: '',
    status: '',
    range: '1h',
    stats: null,
    summary: el('dl', { class: 'summary' }),
    tbody: el('tbody'),
    head: el('tr'),
  };
  const filter = el('input', {
    type: 'search',
    placeholder: 'Filter keys (keyId, key, status, reason)',
    'aria-label': `Filter the keys of ${name}`,
    oninput: (e) => ((view.filter = e.target.value.toLowerCase()), renderKeys(view)),
  });
  const status = el(
    'select',
    {
      'aria-label': `Show keys of ${name} by status`,
      onchange: (e) => ((view.status = e.target.value), renderKeys(view)),
    },
    el('option', { value: '' }, 'every status'),
    ...['available', 'probing', 'blocked', 'exhausted', 'invalid', 'disabled', 'expired'].map((s) =>
      el('option', { value: s }, s),
    ),
  );
  const columns = [
    ['masked', 'Key'],
    ['keyId', 'keyId'],
    ['status', 'Status'],
    ['until', 'Until'],
    ['served', 'Served (min · h · day · week · month · total)'],
    ['credits', 'Credits left'],
    ['lastUsedAt', 'Last used'],
  ];
  for (const [key, label] of columns) {
    const b = el(
      'button',
      {
        type: 'button',
        onclick: () => ((view.sort = { key, dir: view.sort.key === key ? -view.sort.dir : 1 }), renderKeys(view)),
      },
      label,
    );
    view.head.append(el('th', { scope: 'col' }, b));
    b.dataset.key = key;
  }
  view.adminCell = el('th', { scope: 'col' }, 'Actions');
  view.head.append(view.adminCell);
  // One chart, its range chosen by a switch (the choice kept per pool while the page is open).
  view.chart = { box: el('div', { class: 'chart' }), plot: null, range: null };
  const title = el('h3', {}, RANGES[0][1]);
  const switchButtons = RANGES.map(([range, text]) =>
    el(
      'button',
      {
        type: 'button',
        'aria-pressed': range === view.range ? 'true' : 'false',
        onclick: async (e) => {
          view.range = range;
          title.textContent = text;
          for (const b of e.target.parentElement.children) b.setAttribute('aria-pressed', String(b === e.target));
          await drawHistory(view);
        },
      },
      range,
    ),
  );
  view.adminBar = el('div', { class: 'admin' });
  view.section = el(
    'section',
    { class: 'card pool', 'aria-labelledby': `pool-${name}`, 'data-pool': name },
    el('h2', { id: `pool-${name}` }, `Pool ${name}`),
    view.summary,
    el(
      'div',
      { class: 'chart-head' },
      title,
      el('div', { class: 'switch', role: 'group', 'aria-label': `History range of ${name}` }, ...switchButtons),
    ),
    view.chart.box,
    el('h3', {}, 'Keys'),
    el('div', { class: 'row' }, filter, status),
    el('div', { class: 'table-wrap' }, el('table', { class: 'keys' }, el('thead', {}, view.head), view.tbody)),
    view.adminBar,
  );
  return view;
}

function renderSummary(view) {
  const p = view.stats;
  const item = (label, value) => el('div', {}, el('dt', {}, label), el('dd', {}, value));
  const sync = p.upstreamSync;
  view.summary.replaceChildren(
    item('Available', `${p.available} / ${p.total}`),
    item('Strategy', p.strategy),
    item('Credits left', p.creditsRemaining === null ? '—' : String(p.creditsRemaining)),
    item('Last sync', sync === null ? '—' : `${sync.ok ? 'ok' : `failed: ${sync.error}`}, ${relative(sync.at)}`),
    item('Throttle', p.throttledUntil === null ? 'none' : `until ${when(p.throttledUntil)}`),
    item(
      'Runs dry',
      p.exhaustsAt === null
        ? "not before the next reset, at the last hour's rate"
        : `${when(p.exhaustsAt)}, at the last hour's rate`,
    ),
    item('Served today', `${p.keys.reduce((n, k) => n + k.served.day, 0)} uses (handouts and proxied creates)`),
    item(
      'Proxied (this instance)',
      p.proxy.requests === 0
        ? 'no calls yet'
        : `${p.proxy.requests} calls · ${p.proxy.free} free · ${p.proxy.creditsSpent} credits · ` +
            `${p.proxy.failovers} failovers · ${p.proxy.pins} pinned`,
    ),
    item(
      'Out',
      ['blocked', 'exhausted', 'invalid', 'disabled', 'expired', 'probing']
        .filter((s) => p[s])
        .map((s) => `${p[s]} ${s}`)
        .join(', ') || 'none',
    ),
  );
}

function creditsLeft(k) {
  if (!k.credits) return null;
  const left = Object.values(k.credits.remaining).filter((v) => v !== null);
  return left.length ? Math.min(...left) : null;
}

function sortValue(k, key) {
  if (key === 'served') return k.served.total;
  if (key === 'credits') return creditsLeft(k) ?? Infinity;
  return k[key] ?? '';
}

function servedText(k, limits) {
  return WINDOWS.map(([w, limit]) =>
    limits[limit] !== undefined ? `${k.served[w]}/${limits[limit]}` : String(k.served[w]),
  ).join(' · ');
}

function keyActions(view, k) {
  const pool = view.name;
  const act = (label, run, danger = false) =>
    el(
      'button',
      { type: 'button', class: danger ? 'danger' : undefined, 'aria-label': `${label} ${k.keyId}`, onclick: run },
      label,
    );
  const post = async (what, path, body) => {
    answer(
      `${what} ${k.keyId}`,
      await call(`/admin/pools/${pool}/keys/${k.keyId}${path}`, { method: 'POST', admin: true, body }),
    );
    await refresh();
  };
  return el(
    'div',
    { class: 'actions' },
    k.status === 'disabled' || k.status === 'invalid' || k.status === 'blocked' || k.status === 'exhausted'
      ? act('Enable', () => post('Enable', '/enable'))
      : act('Disable', () => {
          const reason = window.prompt(`Disable ${k.masked} (${k.keyId})? Give a reason (optional):`, '');
          if (reason !== null) void post('Disable', '/disable', reason ? { reason } : undefined);
        }),
    act(
      'Reset',
      () => window.confirm(`Reset the served counters of ${k.masked} (${k.keyId})?`) && void post('Reset', '/reset'),
    ),
    act(
      'Remove',
      async () => {
        if (!window.confirm(`Remove ${k.masked} (${k.keyId}) from ${pool}'s key file?`)) return;
        answer(
          `Remove ${k.keyId}`,
          await call(`/admin/pools/${pool}/keys/${k.keyId}`, { method: 'DELETE', admin: true }),
        );
        await refresh();
      },
      true,
    ),
  );
}

function renderKeys(view) {
  const p = view.stats;
  if (!p) return;
  const q = view.filter;
  const rows = p.keys
    .filter((k) => !view.status || k.status === view.status)
    .filter((k) => !q || [k.keyId, k.masked, k.status, k.reason ?? ''].some((v) => v.toLowerCase().includes(q)))
    .sort((a, b) => {
      const x = sortValue(a, view.sort.key);
      const y = sortValue(b, view.sort.key);
      return (x < y ? -1 : x > y ? 1 : 0) * view.sort.dir;
    });
  for (const b of view.head.querySelectorAll('button')) {
    const on = b.dataset.key === view.sort.key;
    b.className = on ? (view.sort.dir > 0 ? 'asc' : 'desc') : '';
    b.closest('th').setAttribute('aria-sort', on ? (view.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  view.adminCell.hidden = !state.admin;
  view.tbody.replaceChildren(
    ...rows.map((k) =>
      el(
        'tr',
        { 'data-key-id': k.keyId },
        el('td', { class: 'key', 'data-label': 'Key' }, el('code', {}, k.masked)),
        el('td', { 'data-label': 'keyId' }, el('code', {}, k.keyId)),
        el(
          'td',
          { class: 'reason', 'data-label': 'Status' },
          el('span', { class: `status ${k.status}` }, k.status),
          k.reason ? ` ${k.reason}` : '',
        ),
        el('td', { 'data-label': 'Until' }, k.until === null ? '—' : when(k.until)),
        el('td', { 'data-label': 'Served' }, servedText(k, p.limits)),
        el('td', { 'data-label': 'Credits left' }, creditsLeft(k) ?? '—'),
        el('td', { 'data-label': 'Last used' }, k.lastUsedAt === null ? 'never' : relative(k.lastUsedAt)),
        state.admin ? el('td', { class: 'row-actions', 'data-label': 'Actions' }, keyActions(view, k)) : null,
      ),
    ),
  );
  if (rows.length === 0)
    view.tbody.append(
      el(
        'tr',
        {},
        el(
          'td',
          { colspan: 8 },
          p.keys.length
            ? 'No key matches the filter.'
            : 'No keys: add one per line to the key file, or below with an admin token.',
        ),
      ),
    );
}

function renderAdminBar(view) {
  if (!state.admin) {
    view.adminBar.replaceChildren();
    view.adminBar.hidden = true;
    return;
  }
  if (view.adminBar.childElementCount) return; // built once; keeps what is being typed
  view.adminBar.hidden = false;
  const area = el('textarea', {
    'aria-label': `Keys to add to ${view.name}, one per line`,
    placeholder: 'Keys to add, one per line',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  view.adminBar.append(
    el('h3', {}, 'Admin'),
    area,
    el(
      'div',
      { class: 'row' },
      el(
        'button',
        {
          type: 'button',
          onclick: async () => {
            const keys = area.value
              .split('\n')
              .map((s) => s.trim())
              .filter((s) => s && !s.startsWith('#'));
            if (!keys.length) return show('Type at least one key, one per line.', true);
            const r = await call(`/admin/pools/${view.name}/keys`, { method: 'POST', admin: true, body: { keys } });
            area.value = '';
            answer(`Add ${keys.length} key(s) to ${view.name}`, r);
            await refresh();
          },
        },
        'Add keys',
      ),
      el(
        'button',
        {
          type: 'button',
          onclick: async () => {
            if (!window.confirm(`Lift the pool-wide throttle of ${view.name}?`)) return;
            answer(
              `Clear the throttle of ${view.name}`,
              await call(`/admin/pools/${view.name}/clear-throttle`, { method: 'POST', admin: true }),
            );
            await refresh();
          },
        },
        'Clear throttle',
      ),
    ),
  );
}

// ------------------------------------------------------------------ apps and the audit trail

/** One row per app and pool it used: credits today against its budget, the month, handouts, failovers. */
function renderApps(apps) {
  const section = $('apps');
  section.hidden = !apps || apps.length === 0;
  if (section.hidden) return;
  const rows = [];
  for (const a of apps) {
    const pools = Object.entries(a.usage);
    const name = el(
      'td',
      {},
      el('strong', {}, a.name),
      a.disabled ? el('span', { class: 'status disabled' }, 'disabled') : null,
    );
    if (pools.length === 0)
      rows.push(
        el(
          'tr',
          { 'data-app': a.name },
          name,
          el('td', {}, a.mode),
          el('td', { colspan: 6, class: 'muted' }, 'no use yet'),
        ),
      );
    for (const [pool, u] of pools) {
      const of = (w) => `${u.credits[w]}${u.budget?.[w] !== undefined ? ` / ${u.budget[w]}` : ''}`;
      rows.push(
        el(
          'tr',
          { 'data-app': a.name, 'data-pool': pool },
          name.cloneNode(true),
          el('td', {}, a.mode),
          el('td', {}, pool),
          el('td', {}, of('day')),
          el('td', {}, of('month')),
          el('td', {}, u.handouts),
          el('td', {}, u.failovers),
          el('td', {}, u.lastSeenAt ? relative(u.lastSeenAt) : 'never'),
        ),
      );
    }
  }
  section.querySelector('tbody').replaceChildren(...rows);
}

/** The latest admin actions (with an admin token): who did what to what, and how it went. */
async function renderAudit() {
  const section = $('audit');
  section.hidden = !state.admin;
  if (!state.admin) return;
  const r = await call('/admin/audit?limit=10', { admin: true });
  if (!r.ok) return;
  const items = r.json.entries
    .slice()
    .reverse()
    .map((e) =>
      el(
        'li',
        {},
        el('span', { class: 'muted' }, `${relative(Date.parse(e.at))} `),
        `${e.actor}: ${e.action} ${e.target}`,
        e.result === 'ok' ? null : el('span', { class: 'status invalid' }, e.result),
      ),
    );
  section.querySelector('ol').replaceChildren(...(items.length ? items : [el('li', { class: 'muted' }, 'none yet')]));
}

// ------------------------------------------------------------------ refresh

async function refresh() {
  clearTimeout(state.timer);
  try {
    renderSession();
    if (!store.getItem('kw.token') && state.auth === 'token') {
      // The server wants a token and none is given: ask for it, without a request bound to fail.
      showSignin();
      return;
    }
    const r = await call('/api/stats');
    if (r.status === 401) {
      showSignin(store.getItem('kw.token') ? 'That API token was refused by the server (401 unauthorized).' : '');
      return;
    }
    if (!r.ok) {
      show(`The stats API answered ${r.status} ${r.json?.error ?? ''}: ${r.json?.message ?? ''}`, true);
      return;
    }
    const names = new Set();
    for (const p of r.json.pools) {
      names.add(p.name);
      let view = state.pools.get(p.name);
      if (!view) {
        view = poolView(p.name);
        state.pools.set(p.name, view);
        $('pools').append(view.section);
      }
      view.stats = p;
      renderSummary(view);
      renderKeys(view);
      renderAdminBar(view);
    }
    for (const [name, view] of state.pools) {
      if (names.has(name)) continue;
      view.section.remove();
      state.pools.delete(name);
    }
    renderApps(r.json.apps);
    await Promise.all([renderAlerts(), renderAudit(), ...[...state.pools.values()].map(drawHistory)]);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    show(`The key server did not answer (${err.message}); retrying.`, true);
  } finally {
    if ($('signin').hidden || store.getItem('kw.token')) state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

/** A pool's history in the range its switch shows. */
async function drawHistory(view) {
  const h = await call(`/api/stats/history?pool=${encodeURIComponent(view.name)}&range=${view.range}`);
  if (h.ok) drawChart(view.chart, h.json);
}

/** The alerts in force on the server (its alert engine's), as a banner over everything. */
async function renderAlerts() {
  const r = await call('/api/alerts');
  const alerts = r.ok ? r.json.alerts : [];
  const banner = $('alerts');
  banner.hidden = alerts.length === 0;
  banner.replaceChildren(
    ...alerts.map((a) =>
      el('p', { class: `alert ${a.severity}` }, el('strong', {}, a.event.replace('_', ' ')), ` ${a.message}`),
    ),
  );
}

/** Signed in or not, said once: one of the two buttons. */
function renderSession() {
  const signedIn = Boolean(store.getItem('kw.token') || store.getItem('kw.adminToken'));
  $('show-signin').hidden = signedIn;
  $('signout').hidden = !signedIn;
}

/** Charts follow their boxes' width (a phone turned, a window resized). */
function fitCharts() {
  for (const view of state.pools.values()) {
    const slot = view.chart;
    if (slot.plot) slot.plot.setSize({ width: Math.max(200, slot.box.clientWidth - 8), height: 220 });
  }
}

let resizing = null;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(fitCharts, 100);
});
$('signin-form').addEventListener('submit', (e) => void signIn(e));
$('show-signin').addEventListener('click', () => showSignin());
$('cancel-signin').addEventListener('click', () => ($('signin').hidden = true));
$('signout').addEventListener('click', signOut);
renderSession();
window.addEventListener('load', async () => {
  state.auth = (await call('/healthz')).json?.auth ?? 'token';
  const problem = await checkAdmin();
  if (problem) show(problem, true);
  await refresh();
});
