// The shardmq dashboard: polls GET /v1/stats once a second (and the exchange and binding lists every
// ten), keeps five minutes of rates in memory and draws them with uPlot. Plain script, no build.
// Everything that comes from the broker is written with textContent, never as HTML.

(() => {
  const POLL_MS = 1000;
  const WINDOW_POINTS = 300;
  const LISTS_EVERY = 10;
  const TOKEN_KEY = 'shardmq-token';

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let prev = null;
  let tick = 0;
  const prevQueues = new Map();
  const prevConnections = new Map();
  const queueSort = { key: 'ready', dir: -1 };

  const RATE_SERIES = [
    ['received', '#1f77b4'],
    ['routed', '#17becf'],
    ['delivered', '#2ca02c'],
    ['acknowledged', '#9467bd'],
    ['confirmed', '#8c564b'],
    ['redelivered', '#ff7f0e'],
    ['dropped', '#d62728'],
    ['unroutable', '#7f7f7f'],
  ];
  const times = [];
  const rates = RATE_SERIES.map(() => []);
  const queued = [[], []];
  const byteRates = [[], []];

  // ---- talking to the broker ---------------------------------------------------------------

  function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (token !== '') headers.set('authorization', `Bearer ${token}`);
    return fetch(path, { ...init, headers, cache: 'no-store' });
  }

  function setStatus(state, text) {
    const el = $('status');
    el.className = `pill ${state}`;
    el.dataset.state = state;
    el.textContent = text;
  }

  function showLogin(refused) {
    setStatus('auth', 'sign in');
    $('main').hidden = true;
    $('login').hidden = false;
    $('login').classList.toggle('refused', refused);
    $('login-message').textContent = refused
      ? 'Refused: that token is not valid here (or may not monitor).'
      : 'This broker asks for a token.';
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value;
    sessionStorage.setItem(TOKEN_KEY, token);
    void poll();
  });

  async function poll() {
    let res;
    try {
      res = await api('/v1/stats');
    } catch {
      setStatus('disconnected', 'disconnected');
      prev = null; // the broker may come back with fresh counters
      return;
    }
    if (res.status === 401 || res.status === 403) {
      showLogin(token !== '');
      return;
    }
    if (!res.ok) {
      setStatus('disconnected', `error ${res.status}`);
      return;
    }
    const stats = await res.json();
    $('login').hidden = true;
    $('main').hidden = false;
    setStatus('live', 'live');
    update(stats);
    if (tick++ % LISTS_EVERY === 0) void loadLists();
    void loadCluster();
  }

  // ---- the cluster (GET /v1/cluster; the card stays hidden on a node of its own) -------------

  async function loadCluster() {
    let c;
    try {
      const res = await api('/v1/cluster');
      if (!res.ok) return;
      c = await res.json();
    } catch {
      return;
    }
    $('cluster-card').hidden = !c.enabled;
    if (!c.enabled) return;
    const q = c.queues || {};
    $('cluster-text').textContent =
      `this node ${c.node}, NATS ${c.nats.connected ? c.nats.server : 'disconnected'}; ` +
      `lost with departed nodes ${fmt(q.lostWithNodes || 0)}, forwards dropped ${fmt(
        c.forwarded.droppedOverBuffer + c.forwarded.droppedTooLarge + c.forwarded.droppedDisconnected,
      )}`;
    fill(
      $('cluster'),
      [
        ['name', 'node'],
        ['state', 'state'],
        ['seen', 'last heard', true],
        ['http', 'clients at'],
        ['queues', 'queues it holds', true],
        ['queued', 'messages it holds', true],
        ['interest', 'NATS subjects', true],
        ['droppedIn', 'dropped from others', true],
      ],
      c.members.map((m) => ({
        key: m.name,
        name: m.self ? `${m.name} (this node)` : m.name,
        state: m.state,
        seen: `${(m.lastSeenMsAgo / 1000).toFixed(1)} s ago`,
        http: m.http,
        queues: fmt(m.queues),
        queued: fmt(m.queued),
        interest: fmt(m.interest),
        droppedIn: fmt(m.droppedIn),
      })),
    );
  }

  // ---- the figures ---------------------------------------------------------------------------

  const sum = (shards, key) => shards.reduce((n, s) => n + (s[key] || 0), 0);

  function totals(s) {
    const sh = s.shards;
    return {
      received: s.global ? s.global.received : sum(sh, 'published'),
      routed: sum(sh, 'published') - sum(sh, 'unroutable'),
      delivered: sum(sh, 'delivered'),
      acknowledged: sum(sh, 'acked'),
      confirmed: s.global ? s.global.confirmed : 0,
      redelivered: sum(sh, 'redelivered'),
      dropped: sum(sh, 'dropped') + (s.slowConsumers?.streamDropped || 0),
      unroutable: sum(sh, 'unroutable') + (s.unroutable || 0),
      bytesIn: s.global ? s.global.receivedBytes || 0 : 0,
      bytesOut: s.global ? s.global.deliveredBytes || 0 : 0,
    };
  }

  function update(s) {
    const now = Date.now() / 1000;
    const t = totals(s);
    if (prev !== null) {
      const dt = Math.max(0.001, now - prev.at);
      // A counter that went back means the broker restarted: a gap, not a negative rate.
      const restarted = RATE_SERIES.some(([k]) => t[k] < prev.t[k]);
      times.push(now);
      RATE_SERIES.forEach(([k], i) => {
        rates[i].push(restarted ? null : (t[k] - prev.t[k]) / dt);
      });
      queued[0].push(sum(s.shards, 'ready'));
      queued[1].push(sum(s.shards, 'unacked'));
      byteRates[0].push(restarted ? null : Math.max(0, t.bytesIn - prev.t.bytesIn) / dt);
      byteRates[1].push(restarted ? null : Math.max(0, t.bytesOut - prev.t.bytesOut) / dt);
      if (times.length > WINDOW_POINTS) {
        times.shift();
        for (const r of rates) r.shift();
        for (const q of queued) q.shift();
        for (const b of byteRates) b.shift();
      }
      drawCharts();
    }
    renderFacts(s);
    renderShards(s, prev === null ? null : now - prev.at);
    renderVhosts(s);
    renderQueues(s, prev === null ? null : now - prev.at);
    renderConnections(s, prev === null ? null : now - prev.at);
    prev = { at: now, t, shards: s.shards };
  }

  // ---- charts ----------------------------------------------------------------------------------

  let ratesChart = null;
  let queuedChart = null;
  let bytesChart = null;

  function chartOptions(el, series) {
    return {
      width: Math.max(200, el.clientWidth),
      height: 220,
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
      axes: [{}, { size: 60 }],
      legend: { live: true },
    };
  }

  function drawCharts() {
    const ratesData = [times, ...rates];
    const queuedData = [times, ...queued];
    const bytesData = [times, ...byteRates];
    if (ratesChart === null) {
      bytesChart = new uPlot(
        chartOptions($('bytes-chart'), [
          ['in', '#1f77b4'],
          ['out', '#2ca02c'],
        ]),
        bytesData,
        $('bytes-chart'),
      );
      ratesChart = new uPlot(chartOptions($('rates-chart'), RATE_SERIES), ratesData, $('rates-chart'));
      queuedChart = new uPlot(
        chartOptions($('queued-chart'), [
          ['ready', '#1f77b4'],
          ['unacked', '#ff7f0e'],
        ]),
        queuedData,
        $('queued-chart'),
      );
    } else {
      ratesChart.setData(ratesData);
      queuedChart.setData(queuedData);
      bytesChart.setData(bytesData);
    }
  }

  window.addEventListener('resize', () => {
    for (const [chart, id] of [
      [ratesChart, 'rates-chart'],
      [queuedChart, 'queued-chart'],
      [bytesChart, 'bytes-chart'],
    ]) {
      if (chart !== null) chart.setSize({ width: Math.max(200, $(id).clientWidth), height: 220 });
    }
  });

  // ---- tables ----------------------------------------------------------------------------------

  const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));
  const rate = (n) => (n === null ? '—' : n < 10 ? n.toFixed(1) : fmt(n));
  const bytes = (n) =>
    n >= 1 << 30
      ? `${(n / (1 << 30)).toFixed(2)} GiB`
      : n >= 1 << 20
        ? `${(n / (1 << 20)).toFixed(1)} MiB`
        : `${(n / 1024).toFixed(0)} KiB`;
  const pct = (used, cap) => (cap > 0 ? `${((100 * used) / cap).toFixed(1)}%` : '—');

  /**
   * Fills `table` with `rows`; columns are [key, label, numeric?]. A row's `key` attribute (its
   * name) lands in data-key, each cell's column in data-col, so a script can find what a person sees.
   */
  function fill(table, columns, rows, { onSort, rowClass } = {}) {
    const head = document.createElement('tr');
    for (const [key, label, num] of columns) {
      const th = document.createElement('th');
      th.textContent = label;
      if (num) th.className = 'num';
      if (onSort) th.addEventListener('click', () => onSort(key));
      head.appendChild(th);
    }
    const body = document.createDocumentFragment();
    for (const row of rows) {
      const tr = document.createElement('tr');
      tr.dataset.key = String(row.key);
      if (rowClass) tr.className = rowClass(row);
      for (const [key, , num] of columns) {
        const td = document.createElement('td');
        td.dataset.col = key;
        td.textContent = row[key];
        if (num) td.className = 'num';
        if (key === 'args') td.className = 'args';
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.replaceChildren(head, body);
  }

  function renderFacts(s) {
    const n = s.node;
    if (n) {
      $('facts').textContent =
        `v${n.version} · node ${n.node} · up ${Math.floor(n.uptimeS / 60)} min · ${n.shards} shard(s) · uWS ${n.uws} · ${n.dataDir ? `data ${n.dataDir}` : 'in memory'}`;
      const share = n.maxMemoryBytes > 0 ? n.rssBytes / n.maxMemoryBytes : 0;
      $('memory-bar').style.width = `${Math.min(100, share * 100).toFixed(1)}%`;
      $('memory-bar').className = share > 0.9 ? 'high' : '';
      $('memory-text').textContent = `RSS ${bytes(n.rssBytes)} of --max-memory ${bytes(n.maxMemoryBytes)}`;
      const alarms = [];
      if (n.memoryAlarm) alarms.push('Memory alarm: above --max-memory, publishers are refused');
      if (n.flowHeldShards > 0) alarms.push(`Flow control: ${n.flowHeldShards} shard(s) hold publishers`);
      $('alarms').hidden = alarms.length === 0;
      $('alarms').textContent = alarms.join(' · ');
    }
  }

  const FSYNC_BOUNDS = [
    [0.001, 'fsyncLe1ms'],
    [0.005, 'fsyncLe5ms'],
    [0.01, 'fsyncLe10ms'],
    [0.05, 'fsyncLe50ms'],
    [0.1, 'fsyncLe100ms'],
    [0.5, 'fsyncLe500ms'],
    [1, 'fsyncLe1s'],
  ];

  /** The fsync p99 as the histogram can say it: the bound of the bucket holding the 99th percentile. */
  function fsyncP99(x) {
    if (!x.fsyncs) return '—';
    const want = 0.99 * x.fsyncs;
    let seen = 0;
    for (const [bound, key] of FSYNC_BOUNDS) {
      seen += x[key] || 0;
      if (seen >= want) return `≤ ${bound * 1000} ms`;
    }
    return '> 1 s';
  }

  function renderShards(s, dt) {
    const prevById = new Map((prev ? prev.shards : []).map((x) => [x.index, x]));
    const rows = s.shards.map((x) => {
      const p = prevById.get(x.index);
      return {
        key: x.index,
        shard: x.index,
        state: x.alive ? 'up' : 'down',
        restarts: fmt(x.restarts),
        busy: x.eventLoopUtilization === undefined ? '—' : `${(100 * x.eventLoopUtilization).toFixed(0)}%`,
        inbound: pct(x.ring.inbound.usedBytes, x.ring.inbound.capacityBytes),
        outbound: pct(x.ring.outbound.usedBytes, x.ring.outbound.capacityBytes),
        records: dt === null || !p ? '—' : rate(Math.max(0, x.inboundRecords - p.inboundRecords) / dt),
        queues: fmt(x.queues),
        consumers: fmt(x.consumers),
        ready: fmt(x.ready),
        unacked: fmt(x.unacked),
        durable: fmt(x.durable),
        log: s.node?.dataDir ? bytes(x.logBytes || 0) : '—',
        fsync: fsyncP99(x),
        lost: fmt(x.lost),
        alive: x.alive,
      };
    });
    fill(
      $('shards'),
      [
        ['shard', 'shard', true],
        ['state', 'state'],
        ['restarts', 'restarts', true],
        ['busy', 'busy', true],
        ['inbound', 'ring in', true],
        ['outbound', 'ring out', true],
        ['records', 'records/s', true],
        ['queues', 'queues', true],
        ['consumers', 'consumers', true],
        ['ready', 'ready', true],
        ['unacked', 'unacked', true],
        ['durable', 'on disk', true],
        ['log', 'log size', true],
        ['fsync', 'fsync p99', true],
        ['lost', 'lost', true],
      ],
      rows,
      { rowClass: (r) => (r.alive ? '' : 'down') },
    );
  }

  /** Each vhost (GET /v1/stats' vhosts): connections, queues, limits; hidden while `/` is the only one. */
  function renderVhosts(s) {
    const list = s.vhosts || [];
    $('vhosts-card').hidden = list.length <= 1;
    if (list.length <= 1) return;
    $('vhosts-count').textContent = `${list.length} vhosts`;
    fill(
      $('vhosts'),
      [
        ['name', 'vhost'],
        ['connections', 'connections', true],
        ['queues', 'queues', true],
        ['queued', 'queued bytes', true],
        ['limits', 'limits'],
      ],
      list.map((v) => ({
        key: v.name,
        name: v.name,
        connections: fmt(v.connections),
        queues: fmt(v.queues),
        queued: v.queuedBytes === undefined ? '' : `${bytes(v.queuedBytes)}${v.overMaxQueuedBytes ? ' (over budget)' : ''}`,
        limits: Object.entries(v.limits || {})
          .map(([k, n]) => `${k} ${fmt(n)}`)
          .join(', '),
      })),
    );
  }

  /** A queue's row key: its name in '/', vhost and name elsewhere (one name may be in several vhosts). */
  const queueId = (q) => (q.vhost && q.vhost !== '/' ? `${q.vhost}\u001f${q.name}` : q.name);

  let queueRows = [];
  let queuesTotal = 0;

  function renderQueues(s, dt) {
    queueRows = s.queues.map((q) => {
      // A queue new since the last poll started from zero: what it holds came in since.
      const id = queueId(q);
      const p = prevQueues.get(id) ?? (dt === null ? undefined : { published: 0, delivered: 0, acked: 0 });
      const st = q.stats || {};
      return {
        key: id,
        vhost: q.vhost || '/',
        name: q.name,
        shard: q.shard,
        durable: q.durable ? 'yes' : '',
        ready: q.depth,
        unacked: q.unacked,
        consumers: q.consumers,
        inRate: dt === null || !p ? null : Math.max(0, (st.published || 0) - p.published) / dt,
        deliverRate: dt === null || !p ? null : Math.max(0, (st.delivered || 0) - p.delivered) / dt,
        ackRate: dt === null || !p ? null : Math.max(0, (st.acked || 0) - p.acked) / dt,
        args: Object.keys(q.arguments || {}).length > 0 ? JSON.stringify(q.arguments) : '',
      };
    });
    queuesTotal = s.queuesTotal ?? s.queues.length;
    prevQueues.clear();
    for (const q of s.queues)
      prevQueues.set(queueId(q), {
        published: q.stats?.published || 0,
        delivered: q.stats?.delivered || 0,
        acked: q.stats?.acked || 0,
      });
    drawQueues();
  }

  /** The queue table from the last poll, filtered and sorted as the person asked (no new request). */
  function drawQueues() {
    const filter = $('queue-filter').value.trim().toLowerCase();
    const shown = queueRows.filter((q) => filter === '' || q.name.toLowerCase().includes(filter));
    const { key, dir } = queueSort;
    shown.sort((a, b) => {
      const x = a[key] ?? -1;
      const y = b[key] ?? -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    $('queues-count').textContent = `${shown.length} shown of ${queuesTotal}`;
    fill(
      $('queues'),
      [
        ['vhost', 'vhost'],
        ['name', 'name'],
        ['shard', 'shard', true],
        ['durable', 'durable'],
        ['ready', 'ready', true],
        ['unacked', 'unacked', true],
        ['consumers', 'consumers', true],
        ['inRate', 'in/s', true],
        ['deliverRate', 'deliver/s', true],
        ['ackRate', 'ack/s', true],
        ['args', 'arguments'],
      ],
      shown.map((q) => ({
        ...q,
        ready: fmt(q.ready),
        unacked: fmt(q.unacked),
        consumers: fmt(q.consumers),
        inRate: rate(q.inRate),
        deliverRate: rate(q.deliverRate),
        ackRate: rate(q.ackRate),
      })),
      {
        onSort: (k) => {
          queueSort.dir = queueSort.key === k ? -queueSort.dir : k === 'name' ? 1 : -1;
          queueSort.key = k;
          drawQueues();
        },
      },
    );
  }

  $('queue-filter').addEventListener('input', () => drawQueues());

  function renderConnections(s, dt) {
    const list = s.connections?.list || [];
    const rows = list.map((c) => {
      const p = prevConnections.get(c.id);
      return {
        key: c.id,
        id: c.id,
        protocol: c.protocol || '',
        vhost: c.vhost || '',
        user: c.user,
        peer: c.peer || '',
        subscriptions: fmt(c.subscriptions),
        inRate: dt === null || !p ? '—' : rate(Math.max(0, c.published - p.published) / dt),
        outRate: dt === null || !p ? '—' : rate(Math.max(0, c.delivered - p.delivered) / dt),
        buffered: bytes(c.bufferedBytes),
        state: c.slow ? 'slow' : c.held ? 'held (flow)' : 'ok',
        dropped: fmt(c.dropped || 0),
        slow: c.slow,
      };
    });
    prevConnections.clear();
    for (const c of list) prevConnections.set(c.id, { published: c.published || 0, delivered: c.delivered || 0 });
    $('connections-count').textContent =
      `${s.connections ? s.connections.websocket : 0} open, ${s.connections ? s.connections.subscriptions : 0} subscriptions`;
    fill(
      $('connections'),
      [
        ['id', 'id', true],
        ['protocol', 'protocol'],
        ['vhost', 'vhost'],
        ['user', 'user'],
        ['peer', 'peer'],
        ['subscriptions', 'subs', true],
        ['inRate', 'in msg/s', true],
        ['outRate', 'out msg/s', true],
        ['buffered', 'buffered', true],
        ['state', 'state'],
        ['dropped', 'dropped', true],
      ],
      rows,
      { rowClass: (r) => (r.slow ? 'slow' : '') },
    );
  }

  async function loadLists() {
    try {
      const [x, b] = await Promise.all([api('/v1/exchanges?page=1&page_size=100'), api('/v1/bindings?page=1&page_size=100')]);
      if (!x.ok || !b.ok) return;
      const exchanges = (await x.json()).items || [];
      const bindings = (await b.json()).items || [];
      fill(
        $('exchanges'),
        [
          ['name', 'exchange'],
          ['type', 'type'],
          ['durable', 'durable'],
        ],
        exchanges.map((e) => ({ key: e.name, name: e.name === '' ? '(default)' : e.name, type: e.type, durable: e.durable ? 'yes' : '' })),
      );
      fill(
        $('bindings'),
        [
          ['source', 'source'],
          ['destination', 'destination'],
          ['kind', 'type'],
          ['routing_key', 'routing key'],
        ],
        bindings.map((x, i) => ({
          key: i,
          source: x.source === '' ? '(default)' : x.source,
          destination: x.destination,
          kind: x.destination_type,
          routing_key: x.routing_key,
        })),
      );
    } catch {
      // The next poll says whether the broker is there.
    }
  }

  $('publish').addEventListener('submit', async (e) => {
    e.preventDefault();
    const destination = $('publish-destination').value.replace(/^\/+/, '');
    try {
      const res = await api(`/v1/publish/${destination}`, { method: 'POST', body: $('publish-payload').value });
      const body = await res.json();
      $('publish-result').textContent = res.ok ? `accepted ${body.accepted}` : `${res.status} ${body.error}: ${body.message}`;
    } catch (err) {
      $('publish-result').textContent = `failed: ${err}`;
    }
  });

  void poll();
  setInterval(() => void poll(), POLL_MS);
})();
