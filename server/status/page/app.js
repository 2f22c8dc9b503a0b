// The status page's script (served as /status/app.js, no build step). It polls GET /v1/status,
// keeps the last five minutes in the tab, and draws the chains, the charts and the scopes. With
// the admin token (kept in this tab's sessionStorage, sent only in an Authorization header) it
// switches scopes and trims handlers through the admin endpoints. Every name is data: text is
// set with textContent and attributes with setAttribute, never parsed as markup.
// @ts-check
'use strict';

/** @typedef {import('../snapshot').StatusSnapshot} Snapshot */
/** @typedef {import('../snapshot').StatusHandler} StatusHandler */
/** @typedef {import('../snapshot').StatusScope} StatusScope */
/** @typedef {{ t: number, bytes: Record<string, number>, allocs: Record<string, number>, fallbacks: Record<string, number>, failures: Record<string, number> }} Point */
/** @typedef {{ t: number, text: string }} Marker */

const WINDOW_MS = 5 * 60 * 1000;
const TOKEN_KEY = 'pinpool.adminToken';
const SVG = 'http://www.w3.org/2000/svg';
const CHART = { width: 640, height: 200, left: 64, right: 8, top: 8, bottom: 22 };

const state = {
  intervalMs: 1000,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
  /** @type {Snapshot | undefined} */
  last: undefined,
  /** @type {Point[]} */
  history: [],
  /** @type {Marker[]} */
  markers: [],
  /** The HTTP switches already marked, as `scope@at`. */
  marked: new Set(),
  /** One colour per series name, the same on every chart. */
  colours: new Map(),
  /** @type {string | null} */
  token: sessionStorage.getItem(TOKEN_KEY),
  unlocked: false,
  unlocking: false,
};

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`status page: #${id} is missing`);
  return el;
}

/**
 * An element with its class and children: strings become text nodes, never markup.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, className, children = []) {
  const el = document.createElement(tag);
  if (className !== undefined && className !== '') el.className = className;
  el.append(...children);
  return el;
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 */
function svg(tag, attributes = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
  return el;
}

/** @param {number} n */
function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** @param {number} n */
function formatRate(n) {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** @param {number} n */
const formatCount = (n) => n.toLocaleString('en-US');

/** @param {number} t */
const clock = (t) => new Date(t).toLocaleTimeString('en-GB');

// --- Polling -------------------------------------------------------------------------------

function schedule() {
  clearTimeout(state.timer);
  if (state.intervalMs > 0) state.timer = setTimeout(() => void poll(), state.intervalMs);
}

async function poll() {
  const live = byId('live');
  try {
    // A service that stops answering (stopped, a dead connection) shows as down, not as live.
    const wait = Math.max(3000, 2 * state.intervalMs);
    const res = await fetch('/v1/status', { cache: 'no-store', signal: AbortSignal.timeout(wait) });
    if (!res.ok) throw new Error(`the service answered ${res.status}`);
    /** @type {Snapshot} */
    const snapshot = await res.json();
    ingest(snapshot);
    render(snapshot);
    live.textContent = `live, read at ${clock(snapshot.at)}`;
    live.classList.remove('down');
  } catch (err) {
    live.textContent = `no answer from the service (${err instanceof Error ? err.message : String(err)}); trying again`;
    live.classList.add('down');
  } finally {
    schedule();
  }
}

// --- History -------------------------------------------------------------------------------

/**
 * The handlers an allocation starts from: the registered ones and the default, each once, with
 * the name the page shows.
 * @param {Snapshot} s
 * @returns {{ label: string, id: number }[]}
 */
function heads(s) {
  const list = s.registered.map((r) => ({ label: r.name, id: r.handler }));
  // Registered names are lower case, so '(default)' names no registered handler.
  if (!list.some((r) => r.id === s.default)) list.push({ label: '(default)', id: s.default });
  return list;
}

/**
 * @param {Record<string, number>} into
 * @param {Record<string, number>} from
 */
function addTo(into, from) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

/**
 * Sums by reason: fallbacks over every fallback (each counts its own moves), failures over the
 * heads (what callers saw), each handler once.
 * @param {Snapshot} s
 */
function reasons(s) {
  /** @type {Record<string, number>} */
  const fallbacks = {};
  for (const x of s.handlers) if (x.kind === 'fallback') addTo(fallbacks, x.stats.fallbacks);
  /** @type {Record<string, number>} */
  const failures = {};
  for (const id of new Set(heads(s).map((r) => r.id))) {
    const x = s.handlers[id];
    if (x !== undefined) addTo(failures, x.stats.failures);
  }
  return { fallbacks, failures };
}

/**
 * Per second between two counts; a counter that went back (a new process) restarts at 0.
 * @param {Record<string, number>} now
 * @param {Record<string, number>} before
 * @param {number} seconds
 */
function rates(now, before, seconds) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const [k, v] of Object.entries(now)) out[k] = Math.max(0, v - (before[k] ?? 0)) / seconds;
  return out;
}

/**
 * Each head's bytes in use and allocations, by the name the page shows. Snapshots number their
 * handlers each on its own, so two are compared by name, never by id.
 * @param {Snapshot} s
 */
function byHead(s) {
  /** @type {Record<string, number>} */
  const bytes = {};
  /** @type {Record<string, number>} */
  const allocations = {};
  for (const r of heads(s)) {
    const stats = s.handlers[r.id]?.stats;
    bytes[r.label] = stats?.bytesInUse ?? 0;
    allocations[r.label] = stats?.allocations ?? 0;
  }
  return { bytes, allocations };
}

/** @param {Snapshot} s */
function ingest(s) {
  const prev = state.last;
  const { bytes, allocations } = byHead(s);
  for (const scope of s.scopes) bytes[`scope ${scope.name}`] = scope.bytesInUse;

  /** @type {Point} */
  const point = { t: s.at, bytes, allocs: {}, fallbacks: {}, failures: {} };
  const restarted = prev !== undefined && prev.startedAt !== s.startedAt;
  if (restarted) state.markers.push({ t: s.at, text: 'service restarted' });
  markSwitches(s, prev, restarted);
  if (prev !== undefined && !restarted && s.at > prev.at) {
    const seconds = (s.at - prev.at) / 1000;
    point.allocs = rates(allocations, byHead(prev).allocations, seconds);
    const [now, then] = [reasons(s), reasons(prev)];
    point.fallbacks = rates(now.fallbacks, then.fallbacks, seconds);
    point.failures = rates(now.failures, then.failures, seconds);
  }
  state.history.push(point);
  const since = s.at - WINDOW_MS;
  while ((state.history[0]?.t ?? Infinity) < since) state.history.shift();
  while ((state.markers[0]?.t ?? Infinity) < since) state.markers.shift();
  state.last = s;
}

/**
 * Marks each switch: those made over HTTP at their own time, from the service's list (so a tab
 * opened later, or paused, still shows them); a switch made in code, seen only as a scope's
 * count going up, at the time of the read that saw it.
 * @param {Snapshot} s
 * @param {Snapshot | undefined} prev
 * @param {boolean} restarted
 */
function markSwitches(s, prev, restarted) {
  /** @type {Map<string, number>} */
  const overHttp = new Map();
  for (const sw of s.switches) {
    const key = `${sw.scope}@${sw.at}`;
    if (state.marked.has(key)) continue;
    state.marked.add(key);
    overHttp.set(sw.scope, (overHttp.get(sw.scope) ?? 0) + 1);
    state.markers.push({ t: Date.parse(sw.at), text: `${sw.scope}: ${sw.from} → ${sw.to}` });
  }
  if (prev === undefined || restarted) return;
  const before = new Map(prev.scopes.map((x) => [x.name, x.switches]));
  for (const scope of s.scopes) {
    const inCode =
      scope.switches - (before.get(scope.name) ?? scope.switches) - (overHttp.get(scope.name) ?? 0);
    if (inCode > 0)
      state.markers.push({
        t: s.at,
        text: `${scope.name}: → ${scope.handler}${inCode > 1 ? ` (${inCode} switches)` : ''}`,
      });
  }
  state.markers.sort((a, b) => a.t - b.t);
}

// --- Rendering -----------------------------------------------------------------------------

/** @param {Snapshot} s */
function render(s) {
  byId('version').textContent = s.version;
  renderChains(s);
  const latest = state.history.at(-1);
  const rated = state.history.slice(1);
  drawChart('bytes', series(state.history, 'bytes'), formatBytes, latest?.bytes);
  drawChart('allocs', series(rated, 'allocs'), formatRate, latest?.allocs);
  drawChart('fallbacks', series(rated, 'fallbacks'), formatRate, latest?.fallbacks);
  drawChart('failures', series(rated, 'failures'), formatRate, latest?.failures);
  renderScopes(s);
  renderAdmin(s);
}

/**
 * @param {StatusHandler} x
 * @param {number} scale
 */
function bar(x, scale) {
  const { bytesInUse, cachedBytes, bytesPeak, capBytes } = x.stats;
  const pct = (/** @type {number} */ n) => `${Math.min(100, (n / scale) * 100).toFixed(3)}%`;
  const inUse = h('span', 'in-use');
  inUse.style.width = pct(bytesInUse);
  const cached = h('span', 'cached');
  cached.style.width = pct(cachedBytes);
  const el = h('div', 'bar', [inUse, cached]);
  if (bytesPeak > 0) {
    const peak = h('span', 'peak');
    peak.style.left = pct(bytesPeak);
    peak.title = `peak ${formatBytes(bytesPeak)}`;
    el.append(peak);
  }
  if (x.kind === 'limit' && capBytes > 0) {
    const cap = h('span', 'cap');
    cap.style.left = pct(capBytes);
    cap.title = `cap ${formatBytes(capBytes)}`;
    el.append(cap);
  }
  return el;
}

/**
 * One link and, nested, the links it takes memory from.
 * @param {StatusHandler} x
 * @param {Map<number, StatusHandler>} byHandler
 * @param {number} scale
 * @param {string} role
 * @param {number} depth
 * @param {Map<number, string>} names the registered name of each head, by id
 * @returns {HTMLLIElement}
 */
function link(x, byHandler, scale, role, depth, names) {
  const s = x.stats;
  const figures = [`in use ${formatBytes(s.bytesInUse)}`];
  if (x.kind === 'pool') {
    figures.push(
      `cached ${formatBytes(s.cachedBytes)}`,
      `reserved ${formatBytes(s.reservedBytes)}`,
    );
    if (s.reservationBytes > 0) figures.push(`reservation ${formatBytes(s.reservationBytes)}`);
  }
  figures.push(`peak ${formatBytes(s.bytesPeak)}`);
  if (x.kind === 'limit') figures.push(`cap ${formatBytes(s.capBytes)}`);
  // What went wrong here, so a leaf this host cannot serve (no driver, no memlock) says why.
  const counted = (/** @type {Record<string, number>} */ byReason) =>
    Object.entries(byReason)
      .map(([reason, n]) => `${reason} ×${formatCount(n)}`)
      .join(', ');
  const notes = [];
  if (Object.keys(s.failures).length > 0) notes.push(`failed: ${counted(s.failures)}`);
  if (Object.keys(s.fallbacks).length > 0) notes.push(`fell back: ${counted(s.fallbacks)}`);
  const also = depth > 0 ? names.get(x.id) : undefined;
  const title = h('div', '', [
    ...(role === '' ? [] : [h('span', 'role', [`${role} `])]),
    h('strong', 'name', [x.name]),
    ' ',
    h('span', 'kind', [x.kind]),
    ...(also === undefined ? [] : [' ', h('span', 'role', [`(also registered as ${also})`])]),
  ]);
  const box = h('div', 'link', [title, bar(x, scale), h('div', 'figures', [figures.join(' · ')])]);
  if (notes.length > 0) box.append(h('div', 'figures notes', [notes.join(' · ')]));
  box.dataset.handler = String(x.id);
  const item = h('li', '', [box]);
  if (depth < 16 && x.upstreams.length > 0) {
    const roles = x.kind === 'fallback' ? ['primary', 'fallback'] : [];
    const list = h('ul');
    x.upstreams.forEach((id, i) => {
      const up = byHandler.get(id);
      if (up !== undefined)
        list.append(link(up, byHandler, scale, roles[i] ?? '', depth + 1, names));
    });
    item.append(list);
  }
  return item;
}

/**
 * Whether a chain holds a pool (what trim() gives memory back from).
 * @param {StatusHandler} x
 * @param {Map<number, StatusHandler>} byHandler
 * @returns {boolean}
 */
function hasPool(x, byHandler, depth = 0) {
  if (x.kind === 'pool') return true;
  return (
    depth < 16 &&
    x.upstreams.some((id) => {
      const up = byHandler.get(id);
      return up !== undefined && hasPool(up, byHandler, depth + 1);
    })
  );
}

/** @param {Snapshot} s */
function renderChains(s) {
  const byHandler = new Map(s.handlers.map((x) => [x.id, x]));
  const scale = Math.max(
    1,
    ...s.handlers.map((x) =>
      Math.max(
        x.stats.bytesInUse,
        x.stats.bytesPeak,
        x.stats.reservedBytes,
        x.kind === 'limit' ? x.stats.capBytes : 0,
      ),
    ),
  );
  const names = new Map(s.registered.map((r) => [r.handler, r.name]));
  const container = byId('chains');
  /** @type {Map<string, HTMLElement>} */
  const existing = new Map();
  for (const card of container.querySelectorAll('article.chain'))
    if (card instanceof HTMLElement) existing.set(card.dataset.name ?? '', card);
  // One card per head, kept across reads (its header and trim button stay under the pointer);
  // the chain inside is drawn again each read.
  const cards = heads(s).map(({ label, id }) => {
    const x = byHandler.get(id);
    const trimmable =
      state.unlocked &&
      x !== undefined &&
      hasPool(x, byHandler) &&
      s.registered.some((r) => r.name === label);
    let card = existing.get(label);
    if (card === undefined || card.dataset.trim !== String(trimmable)) {
      const header = h('header', '', [h('h3', '', [label])]);
      if (id === s.default) header.append(h('span', 'tag', ['used outside scopes']));
      if (trimmable) {
        const trim = h('button', 'admin-only', ['trim']);
        trim.type = 'button';
        trim.title = 'give the memory its pools cache back';
        trim.addEventListener('click', () => void trimHandler(label));
        header.append(trim);
      }
      card = h('article', 'chain', [header]);
      card.dataset.name = label;
      card.dataset.trim = String(trimmable);
    }
    const tree =
      x === undefined ? [] : [h('ul', 'tree', [link(x, byHandler, scale, '', 0, names)])];
    card.replaceChildren(/** @type {Element} */ (card.firstElementChild), ...tree);
    return card;
  });
  if (
    cards.length !== container.children.length ||
    cards.some((c, i) => container.children[i] !== c)
  )
    container.replaceChildren(...cards);
}

/**
 * The colour of a series, the same on every chart: the first name seen gets the first colour.
 * @param {string} name
 */
function colour(name) {
  let i = state.colours.get(name);
  if (i === undefined) state.colours.set(name, (i = state.colours.size));
  return `s${i % 8}`;
}

/**
 * A series' points, split where the tab saw no read for a while (the service did not answer,
 * the refresh was paused), so no line is drawn across the gap.
 * @param {[number, number][]} values
 */
function runs(values) {
  const gap = Math.max(5000, 3 * state.intervalMs);
  /** @type {[number, number][][]} */
  const out = [];
  let last = -Infinity;
  for (const point of values) {
    if (point[0] - last > gap) out.push([]);
    out.at(-1)?.push(point);
    last = point[0];
  }
  return out;
}

/**
 * Each key's values over time, in a stable order (first seen first).
 * @param {Point[]} points
 * @param {'bytes' | 'allocs' | 'fallbacks' | 'failures'} field
 * @returns {{ label: string, values: [number, number][] }[]}
 */
function series(points, field) {
  /** @type {Map<string, [number, number][]>} */
  const out = new Map();
  for (const p of points) {
    for (const [label, v] of Object.entries(p[field])) {
      let values = out.get(label);
      if (values === undefined) out.set(label, (values = []));
      values.push([p.t, v]);
    }
  }
  return [...out].map(([label, values]) => ({ label, values }));
}

/**
 * Draws one chart: a line per series over the last five minutes, the switches as dashed lines,
 * and a legend with each series' latest value.
 * @param {string} name
 * @param {{ label: string, values: [number, number][] }[]} lines
 * @param {(n: number) => string} format
 * @param {Record<string, number> | undefined} latest
 */
function drawChart(name, lines, format, latest) {
  const el = byId(`chart-${name}`);
  // The span drawn: what the tab has seen, from ten seconds up to the window's five minutes.
  const now = state.history.at(-1)?.t ?? Date.now();
  const span = Math.min(WINDOW_MS, Math.max(10_000, now - (state.history[0]?.t ?? now)));
  const x0 = now - span;
  const max = Math.max(0, ...lines.flatMap((l) => l.values.map(([, v]) => v)));
  const top = max > 0 ? max * 1.1 : 1;
  const { width, height, left, right, top: pad, bottom } = CHART;
  const x = (/** @type {number} */ t) => left + ((t - x0) / span) * (width - left - right);
  const y = (/** @type {number} */ v) => pad + (1 - v / top) * (height - pad - bottom);
  const nodes = [];
  for (const v of [0, top / 2, top]) {
    nodes.push(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    const label = svg('text', { x: left - 4, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = max > 0 ? format(v) : v === 0 ? '0' : '';
    nodes.push(label);
  }
  const ago =
    span >= 60_000 ? `−${(span / 60_000).toFixed(1)} min` : `−${Math.round(span / 1000)} s`;
  for (const [t, text] of [
    [x0, ago],
    [now, 'now'],
  ]) {
    const label = svg('text', {
      x: x(Number(t)),
      y: height - 6,
      'text-anchor': t === now ? 'end' : 'start',
    });
    label.textContent = String(text);
    nodes.push(label);
  }
  for (const l of lines) {
    for (const run of runs(l.values)) {
      const points = run.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      const line = svg('polyline', { class: colour(l.label), points });
      line.dataset.series = l.label;
      nodes.push(line);
    }
  }
  let shown = 0;
  for (const m of state.markers) {
    if (m.t < x0) continue;
    const mark = svg('line', {
      class: 'marker',
      x1: x(m.t),
      x2: x(m.t),
      y1: pad,
      y2: height - bottom,
    });
    const title = svg('title');
    title.textContent = `${clock(m.t)} ${m.text}`;
    mark.append(title);
    const label = svg('text', {
      class: 'marker-label',
      x: x(m.t) - 3,
      y: pad + 10 + (shown++ % 3) * 12, // three rows, so close switches stay readable
      'text-anchor': 'end',
    });
    label.textContent = m.text;
    nodes.push(mark, label);
  }
  if (max === 0) {
    const none = svg('text', {
      x: (left + width - right) / 2,
      y: height / 2,
      'text-anchor': 'middle',
    });
    none.textContent = 'none in this window';
    nodes.push(none);
  }
  el.replaceChildren(...nodes);
  el.dataset.max = String(max);
  el.setAttribute('aria-label', `${lines.length} series, highest ${format(max)}`);
  byId(`legend-${name}`).replaceChildren(
    ...lines.map((l) => {
      // A series the last read lacks (a handler gone, a reason no longer counted) shows a dash.
      const value = latest?.[l.label];
      const item = h('li', '', [
        h('span', `swatch ${colour(l.label)}`),
        `${l.label} `,
        h('strong', '', [value === undefined ? '—' : format(value)]),
      ]);
      item.dataset.series = l.label;
      item.dataset.value = String(value ?? '');
      return item;
    }),
  );
}

/**
 * Keeps one row per scope (found by its data-scope attribute), so a control being used is not
 * rebuilt under the pointer.
 * @param {Snapshot} s
 */
function renderScopes(s) {
  const body = /** @type {HTMLTableSectionElement} */ (byId('scopes').querySelector('tbody'));
  byId('no-scopes').hidden = s.scopes.length > 0;
  /** @type {Map<string, HTMLTableRowElement>} */
  const rows = new Map();
  for (const row of body.rows) rows.set(row.dataset.scope ?? '', row);
  const names = s.registered.map((r) => r.name);
  const wanted = s.scopes.map((scope) => {
    let row = rows.get(scope.name);
    if (row === undefined) {
      row = h('tr');
      row.dataset.scope = scope.name;
      for (let i = 0; i < 8; i++) row.append(h('td', i >= 2 && i <= 5 ? 'number' : ''));
      const admin = /** @type {HTMLTableCellElement} */ (row.cells[7]);
      admin.className = 'admin-only';
    }
    const cells = [...row.cells];
    const last = scope.lastSwitch;
    const text = [
      scope.name,
      scope.handler,
      formatCount(scope.allocations),
      formatBytes(scope.bytesInUse),
      formatCount(scope.buffersInUse),
      formatCount(scope.switches),
      last === null ? '—' : `${clock(Date.parse(last.at))}: ${last.from} → ${last.to}`,
    ];
    text.forEach((t, i) => {
      const cell = cells[i];
      if (cell !== undefined && cell.textContent !== t) cell.textContent = t;
    });
    const adminCell = cells[7];
    if (adminCell !== undefined) switchControl(adminCell, scope, names);
    return row;
  });
  if (wanted.length !== body.rows.length || wanted.some((row, i) => body.rows[i] !== row))
    body.replaceChildren(...wanted);
}

/**
 * The switch control of one scope's row: a choice of handler and a button, then a question to
 * confirm. Built once the controls are unlocked; its choices follow the registered names.
 * @param {HTMLTableCellElement} cell
 * @param {StatusScope} scope
 * @param {string[]} names
 */
function switchControl(cell, scope, names) {
  if (!state.unlocked) {
    if (cell.firstChild !== null) cell.replaceChildren();
    return;
  }
  let select = cell.querySelector('select');
  if (select === null) {
    select = h('select');
    select.setAttribute('aria-label', `handler for the scope ${scope.name}`);
    const button = h('button', 'switch', ['switch']);
    button.type = 'button';
    const chosen = /** @type {HTMLSelectElement} */ (select);
    button.addEventListener('click', () => confirmSwitch(cell, scope.name, chosen.value));
    cell.replaceChildren(h('span', 'control', [select, ' ', button]));
  }
  const options = [...select.options].map((o) => o.value);
  if (options.join('\n') !== names.join('\n')) {
    const keep = select.value;
    select.replaceChildren(
      ...names.map((n) => {
        const option = h('option', '', [n]);
        option.value = n;
        return option;
      }),
    );
    select.value = names.includes(keep) ? keep : scope.handler;
  }
}

/**
 * Asks before switching: the row shows what will change, and Confirm sends it.
 * @param {HTMLTableCellElement} cell
 * @param {string} scope
 * @param {string} to
 */
function confirmSwitch(cell, scope, to) {
  const control = cell.querySelector('.control');
  const from = state.last?.scopes.find((x) => x.name === scope)?.handler ?? '?';
  const yes = h('button', 'confirm-switch', ['confirm']);
  yes.type = 'button';
  const no = h('button', '', ['cancel']);
  no.type = 'button';
  const question = h('span', 'confirm', [`switch ${scope} from ${from} to ${to}?`, yes, no]);
  const done = () => {
    question.remove();
    if (control instanceof HTMLElement) control.hidden = false;
  };
  no.addEventListener('click', done);
  yes.addEventListener('click', () => {
    done();
    void switchScope(scope, to);
  });
  if (control instanceof HTMLElement) control.hidden = true;
  cell.append(question);
}

// --- Admin ---------------------------------------------------------------------------------

/** @param {string} text */
function say(text) {
  byId('admin-message').textContent = text;
}

/**
 * Calls an admin endpoint with the token; a refused token locks the controls again.
 * @param {string} method
 * @param {string} url
 * @param {unknown} [body]
 */
async function admin(method, url, body) {
  /** @type {RequestInit} */
  const init = {
    method,
    headers: { authorization: `Bearer ${state.token ?? ''}` },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  if (res.status === 401) {
    lock('the service refused the token');
    throw new Error('the service refused the token');
  }
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.message ?? `the service answered ${res.status}`);
  return answer;
}

/**
 * @param {string} scope
 * @param {string} to
 */
async function switchScope(scope, to) {
  try {
    const answer = await admin('PUT', `/v1/scopes/${encodeURIComponent(scope)}`, { handler: to });
    say(
      `switched ${answer.scope} from ${answer.previous} to ${answer.handler} at ${clock(Date.parse(answer.at))}`,
    );
  } catch (err) {
    say(`switch refused: ${err instanceof Error ? err.message : String(err)}`);
  }
  await poll();
}

/** @param {string} name */
async function trimHandler(name) {
  try {
    const answer = await admin('POST', `/v1/handlers/${encodeURIComponent(name)}/trim`);
    say(`trimmed ${name}: ${formatBytes(answer.releasedBytes)} given back`);
  } catch (err) {
    say(`trim refused: ${err instanceof Error ? err.message : String(err)}`);
  }
  await poll();
}

/** @param {string} why */
function lock(why) {
  state.unlocked = false;
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  document.body.classList.remove('unlocked');
  say(why);
}

/** @param {string} token */
async function unlock(token) {
  state.token = token;
  state.unlocking = true;
  try {
    await admin('GET', '/v1/scopes');
  } catch (err) {
    // A refused token is forgotten (admin() locks); anything else is tried again next read.
    say(`not unlocked: ${err instanceof Error ? err.message : String(err)}`);
    return;
  } finally {
    state.unlocking = false;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.unlocked = true;
  document.body.classList.add('unlocked');
  say('');
  if (state.last !== undefined) render(state.last);
}

/** @param {Snapshot} s */
function renderAdmin(s) {
  // A token kept from earlier in this tab is tried at the first read that says admin is on.
  if (s.admin && state.token !== null && !state.unlocked && !state.unlocking)
    void unlock(state.token);
  byId('admin-off').hidden = s.admin;
  byId('token-form').hidden = !s.admin || state.unlocked;
  byId('admin-on').hidden = !s.admin || !state.unlocked;
  if (!s.admin && state.unlocked) lock('');
}

function start() {
  const select = /** @type {HTMLSelectElement} */ (byId('interval'));
  select.addEventListener('change', () => {
    state.intervalMs = Number(select.value);
    schedule();
  });
  byId('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('token'));
    const token = input.value.trim();
    input.value = '';
    if (token !== '') void unlock(token);
  });
  byId('forget').addEventListener('click', () => {
    lock('token forgotten');
    if (state.last !== undefined) render(state.last);
  });
  void poll();
}

start();
