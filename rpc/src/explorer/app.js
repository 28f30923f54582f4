// Basalt explorer: a page that watches the chain through this node's own JSON-RPC (POST /)
// and WebSocket (/websocket). Plain DOM, no libraries, nothing fetched from elsewhere.
// Everything a peer or a user chose (monikers, memos, logs) goes in as text, never as HTML.
'use strict';

const STEPS = { 1: 'NewHeight', 2: 'NewRound', 3: 'Propose', 4: 'Prevote', 5: 'PrevoteWait',
  6: 'Precommit', 7: 'PrecommitWait', 8: 'Commit' };
const CHART_BLOCKS = 40;   // blocks in the charts
const RECENT_BLOCKS = 15;  // rows in "Recent blocks"

// ---- small helpers ----------------------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null) continue;
    e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}
const $ = (id) => document.getElementById(id);
const short = (h, n = 10) => (h && h.length > n ? h.slice(0, n) + '…' : h || '');
const link = (href, text, cls) => el('a', { href, class: cls }, text);
const blockLink = (h) => link('#/block/' + h, h);
const txLink = (h) => link('#/tx/' + h, short(h, 16), 'mono');
const accountLink = (a) => link('#/account/' + a, short(a, 12), 'mono');
const num = (x) => Number(x).toLocaleString('en-US');

// Amounts are decimal strings (u128): group digits without going through floats.
function amount(s) {
  const t = String(s ?? '0');
  return /^\d+$/.test(t) ? t.replace(/\B(?=(\d{3})+(?!\d))/g, ',') : t;
}

// RFC 3339 with nanoseconds -> milliseconds since the epoch.
function millis(t) {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(t || '');
  if (!m) return NaN;
  const frac = m[2] ? Number('0' + m[2]) * 1000 : 0;
  return Date.parse(m[1] + m[3]) + frac;
}
function ago(t) {
  const s = Math.max(0, (Date.now() - millis(t)) / 1000);
  if (!isFinite(s)) return '';
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  return Math.floor(s / 3600) + ' h ago';
}
function duration(ns) {
  const s = Number(ns) / 1e9;
  if (s < 60) return s.toFixed(0) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}
function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ---- JSON-RPC ----------------------------------------------------------------------------

let nextId = 1;
async function rpc(method, params = {}) {
  const r = await fetch('/', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
  });
  const j = await r.json();
  if (j.error) throw new Error(`${method}: ${j.error.data || j.error.message}`);
  return j.result;
}
// abci_query: the node answers JSON, base64-encoded, as CometBFT apps do.
async function query(path) {
  const r = await rpc('abci_query', { path });
  if (r.response.code !== 0) throw new Error(r.response.log || `query ${path} failed`);
  return JSON.parse(new TextDecoder().decode(b64ToBytes(r.response.value || '')));
}
async function maybe(p) {
  try { return await p; } catch (e) { return null; }
}

// The WebSocket: NewBlock events, and consensus_state asked over it twice a second. When
// it drops, HTTP polling stands in until it is back.
const live = {
  ws: null, waiting: new Map(), onBlock: [],
  connect() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/websocket';
    let ws;
    try { ws = new WebSocket(url); } catch (e) { this.retry(); return; }
    this.ws = ws;
    ws.onopen = () => {
      $('live').classList.add('on');
      $('live').textContent = '●';
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'blocks', method: 'subscribe',
        params: { query: "tm.event='NewBlock'" } }));
    };
    ws.onmessage = (m) => {
      let j;
      try { j = JSON.parse(m.data); } catch (e) { return; }
      const w = this.waiting.get(j.id);
      if (w) {
        this.waiting.delete(j.id);
        if (j.error) w.reject(new Error(j.error.data || j.error.message)); else w.resolve(j.result);
      } else if (j.result && j.result.data && j.result.data.type === 'tendermint/event/NewBlock') {
        const block = j.result.data.value.block;
        for (const f of this.onBlock) f(block);
      }
    };
    ws.onclose = () => {
      $('live').classList.remove('on');
      $('live').textContent = '○';
      for (const w of this.waiting.values()) w.reject(new Error('WebSocket closed'));
      this.waiting.clear();
      this.ws = null;
      this.retry();
    };
    ws.onerror = () => {};
  },
  retry() { setTimeout(() => this.connect(), 2000); },
  call(method, params = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return rpc(method, params);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      setTimeout(() => {
        if (this.waiting.delete(id)) reject(new Error(method + ': no answer'));
      }, 5000);
    });
  },
};

// ---- shared chain data -------------------------------------------------------------------

const chain = {
  monikers: new Map(),  // consensus address -> moniker
  async loadValidators() {
    const [set, records, signing, params] = await Promise.all([
      rpc('validators', { per_page: '100' }),
      query('/validators'),
      maybe(query('/signing_infos')),
      maybe(query('/params')),
    ]);
    for (const r of records) this.monikers.set(r.consensus_address, r.moniker);
    const missed = new Map((signing || []).map((s) => [s.address, s]));
    return { set, records, missed, params };
  },
  name(addr) {
    return this.monikers.get(addr) || short(addr, 12);
  },
};

// ---- views -------------------------------------------------------------------------------

let stopView = () => {};

// Replaces the view with one error message.
function showError(message) {
  $('view').replaceChildren(el('div', { class: 'card error', id: 'error' }, message));
}

function route() {
  stopView();
  stopView = () => {};
  const [, kind, arg] = (location.hash || '#/').split('/');
  const view = $('view');
  view.replaceChildren();
  const show = (p) => p.catch((e) => showError(e.message));
  if (kind === 'block' && arg) show(blockView(view, arg));
  else if (kind === 'tx' && arg) show(txView(view, arg));
  else if (kind === 'account' && arg) show(accountView(view, arg));
  else show(dashboard(view));
}

async function search(q) {
  q = q.trim().replace(/^0x/i, '');
  if (/^\d+$/.test(q)) { location.hash = '#/block/' + q; return; }
  if (/^[0-9a-fA-F]{40}$/.test(q)) { location.hash = '#/account/' + q.toUpperCase(); return; }
  if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const h = q.toUpperCase();
    const tx = await maybe(rpc('tx', { hash: '0x' + h }));
    if (tx) { location.hash = '#/tx/' + h; return; }
    const b = await maybe(rpc('block_by_hash', { hash: '0x' + h }));
    if (b && b.block) { location.hash = '#/block/' + b.block.header.height; return; }
    showError(`No transaction or block has hash ${h}.`);
    return;
  }
  showError('Search by block height, a 64-digit transaction or block hash, or a 40-digit address.');
}

// The dashboard: round state, charts, recent blocks, validators, slashing, mempool, peers.
async function dashboard(view) {
  const card = (title, id, ...body) => el('section', { class: 'card', id }, el('h2', {}, title), ...body);
  view.append(
    el('div', { class: 'grid' },
      card('Height', 'now',
        el('div', { class: 'big', id: 'height' }, '…'),
        el('div', { class: 'muted' }, 'round ', el('span', { id: 'round' }, '…'), ' · ',
          el('span', { id: 'step' }, '…'), ' · proposer ', el('span', { id: 'proposer' }, '…')),
        el('div', {}, 'Prevotes ', el('span', { id: 'pv-text', class: 'muted' })),
        el('div', { class: 'bar' }, el('span', { id: 'pv-bar' })),
        el('div', {}, 'Precommits ', el('span', { id: 'pc-text', class: 'muted' })),
        el('div', { class: 'bar pc' }, el('span', { id: 'pc-bar' }))),
      card('Chain', 'summary', el('dl', { class: 'kv' },
        el('dt', {}, 'Latest block'), el('dd', { id: 'latest-time' }, '…'),
        el('dt', {}, 'Mempool'), el('dd', { id: 'mempool' }, '…'),
        el('dt', {}, 'Validators'), el('dd', { id: 'val-count' }, '…'),
        el('dt', {}, 'Peers'), el('dd', { id: 'peer-count' }, '…'),
        el('dt', {}, 'Node'), el('dd', { id: 'node' }, '…')))),
    el('div', { class: 'grid' },
      card('Block time (ms)', 'chart-time', el('div', { id: 'time-chart' })),
      card('Transactions per block', 'chart-txs', el('div', { id: 'tx-chart' }))),
    card('Recent blocks', 'blocks', el('div', { class: 'scroll', id: 'blocks-table' })),
    card('Validators', 'validators', el('div', { class: 'scroll', id: 'validators-table' })),
    card('Slashing and jailing', 'slashing', el('div', { id: 'slashing-list' })),
    card('Peers', 'peers', el('div', { class: 'scroll', id: 'peers-table' })));

  let alive = true;
  stopView = () => { alive = false; };

  const roundTick = async () => {
    if (!alive) return;
    const cs = await maybe(live.call('consensus_state'));
    if (alive && cs) showRound(cs.round_state);
    if (alive) setTimeout(roundTick, 500);
  };
  let busy = false, again = false;
  const refresh = async () => {
    if (!alive) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      await refreshDashboard();
    } catch (e) {
      console.warn('explorer refresh:', e.message);
    } finally {
      busy = false;
      if (again && alive) { again = false; setTimeout(refresh, 300); }
    }
  };
  // Blocks can come tens a second: refresh at most once a second on their events, and
  // every three seconds anyway (events are missed while the socket is down).
  let last = 0;
  const onBlock = () => {
    const now = Date.now();
    if (now - last > 1000) { last = now; refresh(); }
  };
  live.onBlock = [onBlock];
  const poll = () => { if (alive) { refresh(); setTimeout(poll, 3000); } };
  poll();
  roundTick();
}

function showRound(rs) {
  if (!$('height')) return;
  const [h, r, s] = rs['height/round/step'].split('/');
  $('height').textContent = h;
  $('round').textContent = r;
  $('step').textContent = STEPS[s] || s;
  const addr = rs.proposer && rs.proposer.address;
  $('proposer').textContent = addr ? chain.name(addr) : '–';
  const votes = (rs.height_vote_set || []).find((v) => String(v.round) === r) || {};
  const bar = (bits, id) => {
    const m = / (\d+)\/(\d+) = ([\d.]+)$/.exec(bits || '');
    const frac = m && Number(m[2]) > 0 ? Number(m[1]) / Number(m[2]) : 0;
    $(id + '-bar').style.width = (100 * frac).toFixed(1) + '%';
    $(id + '-text').textContent = m ? `${num(m[1])} of ${num(m[2])} power (${(100 * frac).toFixed(0)} %)` : '';
  };
  bar(votes.prevotes_bit_array, 'pv');
  bar(votes.precommits_bit_array, 'pc');
}

async function refreshDashboard() {
  const status = await rpc('status');
  const tip = Number(status.sync_info.latest_block_height);
  $('chain').textContent = status.node_info.network;
  $('node').textContent = `${status.node_info.moniker} (${status.node_info.version})`;
  $('latest-time').textContent = ago(status.sync_info.latest_block_time);
  const [vals, metas, mempool, net] = await Promise.all([
    chain.loadValidators(),
    blockMetas(tip, CHART_BLOCKS),
    maybe(rpc('num_unconfirmed_txs')),
    maybe(rpc('net_info')),
  ]);
  if (!$('height')) return;
  if (mempool) $('mempool').textContent = `${num(mempool.n_txs)} transactions, ${num(mempool.total_bytes)} bytes`;
  showCharts(metas);
  showBlocks(metas.slice(0, RECENT_BLOCKS));
  showValidators(vals);
  await showSlashing(vals);
  if (net) showPeers(net);
}

// The headers of the last `n` blocks, newest first (`blockchain` gives 20 at a time).
async function blockMetas(tip, n) {
  const out = [];
  let max = tip;
  while (max >= 1 && out.length < n) {
    const min = Math.max(1, max - 19);
    const r = await maybe(rpc('blockchain', { minHeight: String(min), maxHeight: String(max) }));
    if (!r) break;
    out.push(...r.block_metas);
    max = min - 1;
  }
  return out.slice(0, n);
}

function barChart(values, labels, unit) {
  const W = 400, H = 120, pad = 18;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const w = (W - 4) / Math.max(1, values.length);
  values.forEach((v, i) => {
    const r = document.createElementNS(svg.namespaceURI, 'rect');
    const h = ((H - pad) * v) / max;
    r.setAttribute('x', (2 + i * w).toFixed(1));
    r.setAttribute('y', (H - pad - h).toFixed(1));
    r.setAttribute('width', Math.max(1, w - 1).toFixed(1));
    r.setAttribute('height', h.toFixed(1));
    const t = document.createElementNS(svg.namespaceURI, 'title');
    t.textContent = `${labels[i]}: ${num(Math.round(v))} ${unit}`;
    r.append(t);
    svg.append(r);
  });
  const text = (x, anchor, s) => {
    const t = document.createElementNS(svg.namespaceURI, 'text');
    t.setAttribute('x', x); t.setAttribute('y', H - 4); t.setAttribute('text-anchor', anchor);
    t.textContent = s;
    svg.append(t);
  };
  if (labels.length) {
    text(2, 'start', labels[0]);
    text(W - 2, 'end', labels[labels.length - 1]);
  }
  text(W / 2, 'middle', `max ${num(Math.round(max))} ${unit}`);
  return svg;
}

function showCharts(metas) {
  const old = metas.slice().reverse();  // oldest first
  const times = [], tLabels = [];
  for (let i = 1; i < old.length; i++) {
    times.push(Math.max(0, millis(old[i].header.time) - millis(old[i - 1].header.time)));
    tLabels.push('#' + old[i].header.height);
  }
  $('time-chart').replaceChildren(barChart(times, tLabels, 'ms'));
  $('tx-chart').replaceChildren(barChart(old.map((m) => Number(m.num_txs)), old.map((m) => '#' + m.header.height), 'txs'));
}

function showBlocks(metas) {
  $('blocks-table').replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'Height'), el('th', {}, 'Time'), el('th', {}, 'Proposer'),
      el('th', { class: 'num' }, 'Txs'), el('th', { class: 'hide-narrow' }, 'Hash'))),
    el('tbody', {}, metas.map((m) => el('tr', { 'data-height': m.header.height },
      el('td', {}, blockLink(m.header.height)),
      el('td', { title: m.header.time }, ago(m.header.time)),
      el('td', {}, chain.name(m.header.proposer_address)),
      el('td', { class: 'num' }, num(m.num_txs)),
      el('td', { class: 'mono hide-narrow' }, short(m.block_id.hash, 16)))))));
}

function statusTag(r) {
  if (!r) return el('span', { class: 'tag' }, 'unknown');
  if (r.tombstoned) return el('span', { class: 'tag bad' }, 'tombstoned');
  if (r.jailed) return el('span', { class: 'tag warn' }, `jailed until #${r.jailed_until}`);
  if (r.status === 'Bonded') return el('span', { class: 'tag good' }, 'bonded');
  if (r.status && r.status.Unbonding) return el('span', { class: 'tag' }, `unbonding until #${r.status.Unbonding.until}`);
  return el('span', { class: 'tag' }, String(r.status).toLowerCase());
}

function showValidators({ set, records, missed, params }) {
  $('val-count').textContent = `${set.validators.length} active of ${records.length}`;
  const total = set.validators.reduce((s, v) => s + Number(v.voting_power), 0);
  const active = new Map(set.validators.map((v) => [v.address, v]));
  // Active validators by power, then the others (jailed, unbonding) by tokens.
  const rows = records.slice().sort((a, b) => {
    const pa = active.has(a.consensus_address) ? Number(active.get(a.consensus_address).voting_power) : -1;
    const pb = active.has(b.consensus_address) ? Number(active.get(b.consensus_address).voting_power) : -1;
    return pb - pa || (BigInt(b.tokens) > BigInt(a.tokens) ? 1 : -1);
  });
  const window = params ? params.signed_blocks_window : null;
  $('validators-table').replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'Moniker'), el('th', { class: 'num' }, 'Power'),
      el('th', { class: 'num' }, 'Share'), el('th', { class: 'num' }, 'Priority'),
      el('th', { class: 'num' }, 'Commission'), el('th', { class: 'num' }, 'Self-bond'),
      el('th', { class: 'num' }, 'Delegated'), el('th', {}, 'Status'),
      el('th', { class: 'num' }, 'Missed'), el('th', { class: 'hide-narrow' }, 'Operator'))),
    el('tbody', {}, rows.map((r) => {
      const v = active.get(r.consensus_address);
      const power = v ? Number(v.voting_power) : 0;
      const m = missed.get(r.consensus_address);
      const delegated = (BigInt(r.tokens) - BigInt(r.self_bond)).toString();
      return el('tr', { 'data-moniker': r.moniker, 'data-address': r.consensus_address },
        el('td', {}, r.moniker || '–'),
        el('td', { class: 'num' }, num(power)),
        el('td', { class: 'num' }, total ? (100 * power / total).toFixed(1) + ' %' : '–'),
        el('td', { class: 'num' }, v ? num(v.proposer_priority) : '–'),
        el('td', { class: 'num' }, (Number(r.commission) / 10000).toFixed(2) + ' %'),
        el('td', { class: 'num' }, amount(r.self_bond)),
        el('td', { class: 'num' }, amount(delegated)),
        el('td', {}, statusTag(r)),
        el('td', { class: 'num missed', title: m ? `since #${m.start_height}` : '' },
          m ? `${m.missed_count} / ${m.window || window || '?'}` : '0'),
        el('td', { class: 'hide-narrow' }, accountLink(r.operator)));
    }))));
}

// The chain's slashes (each block reports its own as `slash` events, found by
// block_search), newest first, and who is jailed or tombstoned now.
const REASONS = { double_sign: 'double signing', missing_signature: 'missing blocks (downtime)' };
async function showSlashing({ records }) {
  const items = [];
  const found = await maybe(rpc('block_search', { query: 'slash.reason EXISTS', order_by: 'desc', per_page: '20' }));
  for (const b of (found && found.blocks) || []) {
    const height = b.block.header.height;
    const r = await maybe(rpc('block_results', { height }));
    for (const e of (r && r.finalize_block_events) || []) {
      if (e.type !== 'slash') continue;
      const a = Object.fromEntries(e.attributes.map((x) => [x.key, x.value]));
      items.push(el('li', { class: 'slash', 'data-address': a.address, 'data-reason': a.reason },
        'Block ', blockLink(height), ': ', el('strong', {}, chain.name(a.address)),
        ` slashed for ${REASONS[a.reason] || a.reason}, ${amount(a.burned)} burned`));
    }
  }
  for (const r of records) {
    if (r.tombstoned) items.push(el('li', {}, el('strong', {}, r.moniker), ' is tombstoned (double signing: it can never return)'));
    else if (r.jailed) items.push(el('li', {}, el('strong', {}, r.moniker), ` is jailed until block #${r.jailed_until}`));
  }
  $('slashing-list').replaceChildren(items.length ? el('ul', {}, items) : el('p', { class: 'muted' }, 'Nobody has been slashed or jailed.'));
}

function showPeers(net) {
  $('peer-count').textContent = net.n_peers;
  $('peers-table').replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'Moniker'), el('th', {}, 'Address'), el('th', {}, 'Direction'),
      el('th', { class: 'num' }, 'Height'), el('th', { class: 'num' }, 'Connected'), el('th', { class: 'hide-narrow' }, 'Version'))),
    el('tbody', {}, net.peers.map((p) => el('tr', {},
      el('td', {}, p.node_info.moniker || short(p.node_info.id, 12)),
      el('td', { class: 'mono' }, p.node_info.listen_addr || p.remote_ip),
      el('td', {}, p.is_outbound ? 'outbound' : 'inbound'),
      el('td', { class: 'num' }, p.last_height ? num(p.last_height) : ''),
      el('td', { class: 'num' }, duration(p.connection_status.Duration)),
      el('td', { class: 'hide-narrow' }, p.node_info.version))))));
}

// ---- block, transaction and account pages ----------------------------------------------

async function blockView(view, height) {
  const [b, results] = await Promise.all([rpc('block', { height }), maybe(rpc('block_results', { height }))]);
  await maybe(chain.loadValidators());
  const h = b.block.header;
  const hashes = ((results && results.txs_results) || []).map((r) => {
    const ev = (r.events || []).find((e) => e.type === 'tx' && e.attributes.some((a) => a.key === 'hash'));
    return { code: r.code, hash: ev ? ev.attributes.find((a) => a.key === 'hash').value : null, log: r.log };
  });
  const txs = b.block.data.txs || [];
  const sigs = b.block.last_commit.signatures || [];
  const signed = sigs.filter((s) => s.block_id_flag === 2).length;
  view.append(
    el('section', { class: 'card', id: 'block' }, el('h2', {}, 'Block ', el('span', { id: 'block-height' }, h.height)),
      el('dl', { class: 'kv' },
        el('dt', {}, 'Hash'), el('dd', { class: 'mono' }, b.block_id.hash),
        el('dt', {}, 'Time'), el('dd', {}, `${h.time} (${ago(h.time)})`),
        el('dt', {}, 'Proposer'), el('dd', {}, chain.name(h.proposer_address), ' ', el('span', { class: 'mono muted' }, short(h.proposer_address, 12))),
        el('dt', {}, 'Transactions'), el('dd', {}, num(txs.length)),
        el('dt', {}, 'Last commit'), el('dd', {}, `${signed} of ${sigs.length} signatures (round ${b.block.last_commit.round})`),
        el('dt', {}, 'Evidence'), el('dd', {}, num((b.block.evidence.evidence || []).length)),
        el('dt', {}, 'App hash'), el('dd', { class: 'mono' }, h.app_hash),
        el('dt', {}, 'Validators hash'), el('dd', { class: 'mono' }, h.validators_hash),
        el('dt', {}, 'Chain'), el('dd', {}, h.chain_id)),
      el('p', {}, Number(h.height) > 1 ? link('#/block/' + (Number(h.height) - 1), '← previous') : '', ' ',
        link('#/block/' + (Number(h.height) + 1), 'next →'))),
    el('section', { class: 'card' }, el('h2', {}, 'Transactions'),
      txs.length === 0 ? el('p', { class: 'muted' }, 'None.') :
        el('div', { class: 'scroll' }, el('table', {},
          el('thead', {}, el('tr', {}, el('th', {}, '#'), el('th', {}, 'Hash'), el('th', {}, 'Result'), el('th', { class: 'num' }, 'Bytes'))),
          el('tbody', {}, txs.map((t, i) => el('tr', {},
            el('td', {}, i),
            el('td', {}, hashes[i] && hashes[i].hash ? txLink(hashes[i].hash) : '–'),
            el('td', {}, hashes[i] ? (hashes[i].code === 0 ? el('span', { class: 'tag good' }, 'ok') : el('span', { class: 'tag bad', title: hashes[i].log }, 'code ' + hashes[i].code)) : ''),
            el('td', { class: 'num' }, b64ToBytes(t).length))))))));
}

// A transaction's events as (type, key) -> value.
function attrs(events) {
  const out = {};
  for (const e of events || []) for (const a of e.attributes || []) out[`${e.type}.${a.key}`] = a.value;
  return out;
}

async function txView(view, hash) {
  const t = await rpc('tx', { hash: '0x' + hash });
  const a = attrs(t.tx_result.events);
  const ok = t.tx_result.code === 0;
  const rows = [
    ['Hash', el('span', { class: 'mono', id: 'tx-hash' }, t.hash)],
    ['Block', el('span', { id: 'tx-height' }, blockLink(t.height)), ` (index ${t.index})`],
    ['Result', ok ? el('span', { class: 'tag good', id: 'tx-result' }, 'ok') : el('span', { class: 'tag bad', id: 'tx-result' }, 'code ' + t.tx_result.code)],
  ];
  if (!ok) rows.push(['Log', t.tx_result.log]);
  if (a['message.action']) rows.push(['Action', a['message.action']]);
  if (a['message.sender']) rows.push(['From', accountLink(a['message.sender'])]);
  if (a['transfer.recipient']) rows.push(['To', el('span', { id: 'tx-to' }, accountLink(a['transfer.recipient']))]);
  if (a['transfer.amount']) rows.push(['Amount', el('span', { id: 'tx-amount' }, amount(a['transfer.amount']))]);
  if (a['tx.fee']) rows.push(['Fee', amount(a['tx.fee'])]);
  rows.push(['Size', `${b64ToBytes(t.tx).length} bytes`]);
  view.append(
    el('section', { class: 'card', id: 'tx' }, el('h2', {}, 'Transaction'),
      el('dl', { class: 'kv' }, rows.map(([k, ...v]) => [el('dt', {}, k), el('dd', {}, v)]))),
    el('section', { class: 'card' }, el('h2', {}, 'Events'), el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Event'), el('th', {}, 'Key'), el('th', {}, 'Value'))),
      el('tbody', {}, (t.tx_result.events || []).flatMap((e) => e.attributes.map((x) =>
        el('tr', {}, el('td', {}, e.type), el('td', {}, x.key), el('td', { class: 'mono wrap' }, x.value)))))))));
}

async function accountView(view, addr) {
  addr = addr.toUpperCase();
  const [acct, dels, unb, sent, received] = await Promise.all([
    query('/account/' + addr),
    maybe(query('/delegations/' + addr)),
    maybe(query('/unbonding/' + addr)),
    maybe(rpc('tx_search', { query: `message.sender='${addr}'`, order_by: 'desc', per_page: '30' })),
    maybe(rpc('tx_search', { query: `transfer.recipient='${addr}'`, order_by: 'desc', per_page: '30' })),
  ]);
  await maybe(chain.loadValidators());
  const seen = new Map();
  for (const t of [...((sent && sent.txs) || []), ...((received && received.txs) || [])]) seen.set(t.hash, t);
  const txs = [...seen.values()].sort((x, y) => Number(y.height) - Number(x.height) || y.index - x.index);
  view.append(
    el('section', { class: 'card', id: 'account' }, el('h2', {}, 'Account'),
      el('dl', { class: 'kv' },
        el('dt', {}, 'Address'), el('dd', { class: 'mono', id: 'account-address' }, addr),
        el('dt', {}, 'Balance'), el('dd', { id: 'account-balance' }, amount(acct.balance)),
        el('dt', {}, 'Nonce'), el('dd', { id: 'account-nonce' }, acct.nonce))),
    el('section', { class: 'card' }, el('h2', {}, 'Delegations'),
      (dels && dels.length) ? el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Validator'), el('th', { class: 'num' }, 'Tokens'))),
        el('tbody', {}, dels.map((d) => el('tr', {}, el('td', {}, accountLink(d.validator)), el('td', { class: 'num' }, amount(d.tokens))))))
        : el('p', { class: 'muted' }, 'None.')),
    el('section', { class: 'card' }, el('h2', {}, 'Unbonding'),
      (unb && unb.length) ? el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Validator'), el('th', { class: 'num' }, 'Tokens'), el('th', { class: 'num' }, 'Completes at'))),
        el('tbody', {}, unb.map((u) => el('tr', {}, el('td', {}, accountLink(u.validator)), el('td', { class: 'num' }, amount(u.balance)), el('td', { class: 'num' }, blockLink(u.completion_height))))))
        : el('p', { class: 'muted' }, 'None.')),
    el('section', { class: 'card' }, el('h2', {}, 'Transactions'),
      (sent === null && received === null) ? el('p', { class: 'muted' }, 'This node does not index transactions.') :
        txs.length === 0 ? el('p', { class: 'muted' }, 'None found.') :
          el('div', { class: 'scroll' }, el('table', { id: 'account-txs' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Hash'), el('th', {}, 'Block'), el('th', {}, 'Direction'), el('th', { class: 'num' }, 'Amount'))),
            el('tbody', {}, txs.map((t) => {
              const a = attrs(t.tx_result.events);
              const dir = a['message.sender'] === addr ? (a['transfer.recipient'] === addr ? 'self' : 'out') : 'in';
              return el('tr', { 'data-hash': t.hash }, el('td', {}, txLink(t.hash)), el('td', {}, blockLink(t.height)),
                el('td', {}, dir), el('td', { class: 'num' }, a['transfer.amount'] ? amount(a['transfer.amount']) : a['message.action'] || ''));
            }))))));
}

// ---- start -------------------------------------------------------------------------------

window.addEventListener('hashchange', route);
$('search').addEventListener('submit', (e) => {
  e.preventDefault();
  search($('q').value).catch((err) => showError(err.message));
});
live.connect();
route();
