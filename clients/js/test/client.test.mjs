// The Tidings client against fake transports and a manual clock: state transitions,
// reconnection, resume, de-duplication, fallbacks, token refresh and requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Tidings, CloseCode } from '../tidings.js';
import {
  FakeClock, makeWebSocket, makeEventSource, makeFetch, makeBroadcastChannel, note, flush,
} from './fakes.mjs';

const BASE = 'https://n.example.com';

/** A client wired to fakes; `record` collects what it emits. */
function setup(options = {}) {
  const clock = new FakeClock();
  const WebSocket = makeWebSocket();
  const EventSource = makeEventSource();
  const fetch = options.fetch || makeFetch(() => ({ status: 503, body: {} }));
  const client = new Tidings({
    url: BASE,
    token: 'tok1',
    WebSocket,
    EventSource,
    fetch,
    broadcast: false,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    ...options,
  });
  const record = { status: [], notifications: [], unread: [], errors: [], retries: [] };
  client.on('status', (s) => record.status.push(s));
  client.on('notification', (n) => record.notifications.push(n.id));
  client.on('unread', (c) => record.unread.push(c));
  client.on('error', (e) => record.errors.push(e));
  client.on('retry', (r) => record.retries.push(r));
  return { clock, WebSocket, EventSource, fetch, client, record };
}

/** Answer the list request the client sends after welcome. */
function answerList(ws, items = [], unread_count = 0) {
  ws.reply('list', { type: 'list', items, unread_count, next_before: null });
}

test('connects over WebSocket: connecting -> open, welcome count, first page', async () => {
  const { WebSocket, client, record } = setup();
  await flush();
  assert.deepEqual(record.status, ['connecting']);
  const ws = WebSocket.last;
  assert.equal(ws.url, 'wss://n.example.com/ws?token=tok1');
  ws.accept({ unread: 3 });
  await flush();
  assert.deepEqual(record.status, ['connecting', 'open']);
  assert.equal(client.unreadCount, 3);
  assert.equal(client.user, 'alice');
  assert.equal(client.transport, 'websocket');
  const [request] = ws.frames('list');
  assert.equal(request.limit, 20);
  assert.ok(request.ref, 'requests carry a ref');
  const a = note();
  answerList(ws, [a], 3);
  await flush();
  assert.deepEqual(client.notifications.map((n) => n.id), [a.id]);
  assert.equal(client.lastId, a.id, 'the first page seeds the resume point');
  assert.deepEqual(record.notifications, [], 'listed items are not announced as new');
  client.close();
});

test('an empty first page still gives a resume point, so nothing is lost on reconnect', async () => {
  const { clock, WebSocket, client, record } = setup();
  await flush();
  WebSocket.last.accept();
  await flush();
  answerList(WebSocket.last, [], 0);
  await flush();
  assert.equal(client.lastId, '0000000000000000');
  WebSocket.last.serverClose(1006);
  await clock.advance(1000);
  assert.equal(WebSocket.last.params.get('after'), '0000000000000000');
  const n = note();
  WebSocket.last.accept();
  WebSocket.last.receive({ type: 'notification', notification: n });
  await flush();
  assert.deepEqual(record.notifications, [n.id]);
  client.close();
});

test('a notification is delivered once even when the server repeats it', async () => {
  const { WebSocket, client, record } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  answerList(ws);
  const n = note();
  ws.receive({ type: 'notification', notification: n });
  ws.receive({ type: 'notification', notification: n });
  await flush();
  assert.deepEqual(record.notifications, [n.id]);
  assert.equal(client.unreadCount, 1);
  assert.deepEqual(record.unread, [1]);
  client.close();
});

test('drop -> reconnecting -> resume with ?after=<last id>, replay shown exactly once', async () => {
  const { clock, WebSocket, client, record } = setup();
  await flush();
  const first = WebSocket.last;
  first.accept();
  await flush();
  answerList(first);
  const [a, b, c] = [note(), note(), note()];
  first.receive({ type: 'notification', notification: a });
  first.receive({ type: 'notification', notification: b });
  await flush();
  first.serverClose(1006);
  await flush();
  assert.equal(client.status, 'reconnecting');
  assert.equal(WebSocket.instances.length, 1, 'waits a jittered moment first');
  await clock.advance(250);
  const ws2 = WebSocket.last;
  assert.notEqual(ws2, first);
  assert.equal(ws2.params.get('after'), b.id);
  ws2.accept();
  // The server replays what was missed; a racing duplicate of b must not show again.
  ws2.receive({ type: 'notification', notification: b });
  ws2.receive({ type: 'notification', notification: c });
  await flush();
  assert.deepEqual(record.notifications, [a.id, b.id, c.id]);
  assert.equal(client.status, 'open');
  assert.deepEqual(record.status, ['connecting', 'open', 'reconnecting', 'open']);
  client.close();
});

test('reconnect delays use full-jitter backoff that grows and is capped', async () => {
  const { clock, WebSocket, client, record } = setup({ backoff: { base: 1000, cap: 8000 } });
  await flush();
  for (let i = 0; i < 7; i += 1) {
    WebSocket.last.serverClose(1006);
    await flush();
    // SSE fails too (no server), then polling (fetch 503): the whole cycle failed.
    EventSourceFail(client);
    await flush();
    await clock.advance(20000);
  }
  const delays = record.retries.map((r) => r.delay);
  assert.ok(delays.length >= 6, `got ${delays.length} retries`);
  // random() = 0.5, so each delay is half its ceiling: 500, 1000, 2000, 4000, 4000, ...
  assert.deepEqual(delays.slice(0, 6), [500, 1000, 2000, 4000, 4000, 4000]);
  assert.equal(client.status, 'connecting', 'never opened yet');
  client.close();
});

// Make whatever EventSource the client opened fail, if one is open.
function EventSourceFail(client) {
  const ES = client._env.EventSource;
  const es = ES.last;
  if (es && !es.closed) es.fail();
}

test('ping is answered with pong; silence for two heartbeats closes and resumes', async () => {
  const { clock, WebSocket, client } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept({ heartbeat: 2 });
  await flush();
  answerList(ws);
  ws.receive({ type: 'ping' });
  assert.deepEqual(ws.frames('pong'), [{ type: 'pong' }]);
  await clock.advance(4000); // two intervals: still within the grace
  assert.equal(client.status, 'open');
  ws.receive({ type: 'ping' }); // activity resets the watchdog
  await clock.advance(4900);
  assert.equal(client.status, 'open');
  await clock.advance(200); // 5.1 s of silence > 2.5 heartbeats
  assert.equal(ws.closedWith?.code, CloseCode.HEARTBEAT_TIMEOUT);
  await clock.advance(300);
  assert.equal(WebSocket.instances.length, 2, 'reconnected straight away');
  client.close();
});

test('4001: refresh the token through getToken and reconnect with it', async () => {
  let n = 0;
  const getToken = async () => `fresh${(n += 1)}`;
  const { clock, WebSocket, client, record } = setup({ token: undefined, getToken });
  await flush();
  assert.equal(WebSocket.last.params.get('token'), 'fresh1');
  WebSocket.last.accept();
  await flush();
  WebSocket.last.serverClose(CloseCode.UNAUTHENTICATED, 'token expired');
  await flush();
  await clock.advance(0);
  assert.equal(WebSocket.instances.length, 2);
  assert.equal(WebSocket.last.params.get('token'), 'fresh2');
  WebSocket.last.accept();
  await flush();
  assert.equal(client.status, 'open');
  assert.deepEqual(record.errors, []);
  client.close();
});

test('4001 refused at connect: refresh once, retry the same transport', async () => {
  let n = 0;
  const { WebSocket, client } = setup({ token: undefined, getToken: async () => `t${(n += 1)}` });
  await flush();
  WebSocket.last.serverClose(CloseCode.UNAUTHENTICATED);
  await flush();
  assert.equal(WebSocket.instances.length, 2);
  assert.equal(WebSocket.last.params.get('token'), 't2');
  WebSocket.last.accept();
  await flush();
  assert.equal(client.status, 'open');
  client.close();
});

test('4001 with a fixed token: stop and report, do not hammer the server', async () => {
  const { clock, WebSocket, client, record } = setup();
  await flush();
  WebSocket.last.accept();
  await flush();
  WebSocket.last.serverClose(CloseCode.UNAUTHENTICATED);
  await clock.advance(60000);
  assert.equal(client.status, 'closed');
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(record.errors[0].code, 'unauthenticated');
  // The app can hand over a new token and carry on.
  client.setToken('tok2');
  await flush();
  assert.equal(WebSocket.instances.length, 2);
  assert.equal(WebSocket.last.params.get('token'), 'tok2');
  client.close();
});

test('4003: forbidden is final until the app reconnects', async () => {
  const { clock, WebSocket, client, record } = setup();
  await flush();
  WebSocket.last.accept();
  await flush();
  WebSocket.last.serverClose(CloseCode.FORBIDDEN, 'origin not allowed');
  await clock.advance(120000);
  assert.equal(client.status, 'closed');
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(record.errors.at(-1).code, 'forbidden');
  client.close();
});

test('4009 and 4008 wait longer before coming back; 4010 and 1012 come back soon', async () => {
  for (const [code, atLeast, atMost] of [[4009, 15000, 16000], [4008, 5000, 6000], [4010, 0, 300], [1012, 250, 600]]) {
    const { clock, WebSocket, client } = setup();
    await flush();
    WebSocket.last.accept();
    await flush();
    await clock.advance(20000); // a connection that lived a while
    WebSocket.last.serverClose(code);
    await flush();
    await clock.advance(atLeast - 1);
    assert.equal(WebSocket.instances.length, 1, `${code}: too early`);
    await clock.advance(atMost - atLeast + 1);
    assert.equal(WebSocket.instances.length, 2, `${code}: reconnected by ${atMost} ms`);
    client.close();
  }
});

test('4400: a refused resume point is dropped once; the client connects afresh and refetches', async () => {
  const { clock, WebSocket, EventSource, client, record } = setup({ after: '7000000000000001' });
  await flush();
  assert.equal(WebSocket.last.params.get('after'), '7000000000000001');
  WebSocket.last.serverClose(CloseCode.INVALID_AFTER, '`after` must be a notification id');
  await flush();
  assert.equal(WebSocket.instances.length, 2, 'retried at once, on the same transport');
  assert.equal(EventSource.instances.length, 0, 'no fallback: SSE would be refused too');
  assert.equal(WebSocket.last.params.get('after'), null, 'without the refused resume point');
  WebSocket.last.accept({ unread: 1 });
  await flush();
  const fresh = note();
  answerList(WebSocket.last, [fresh], 1);
  await flush();
  assert.equal(client.status, 'open');
  assert.deepEqual(client.notifications.map((n) => n.id), [fresh.id]);
  assert.equal(client.lastId, fresh.id, 'the refetched list gives a new resume point');
  assert.deepEqual(record.errors, []);
  await clock.advance(60000);
  assert.equal(WebSocket.instances.length, 2, 'no reconnect loop');
  WebSocket.last.serverClose(1006);
  await clock.advance(1000);
  assert.equal(WebSocket.last.params.get('after'), fresh.id, 'resumes normally afterwards');
  client.close();
});

test('an `after` option that is not a notification id is never sent', async () => {
  for (const after of ['ffffffffffffffff', 'nope', 42]) {
    const { WebSocket, client } = setup({ after });
    await flush();
    assert.equal(WebSocket.last.params.get('after'), null, String(after));
    client.close();
  }
});

test('WebSocket blocked -> SSE with the same frames; later upgrades back to WebSocket', async () => {
  const { clock, WebSocket, EventSource, client, record } = setup({ upgradeInterval: 30000 });
  client.on('upgrade', (u) => record.upgrade = u);
  await flush();
  WebSocket.last.serverClose(1006); // never opened: blocked by a proxy, say
  await flush();
  const es = EventSource.last;
  assert.ok(es, 'fell back to SSE');
  assert.equal(es.url, 'https://n.example.com/api/v1/me/stream?token=tok1');
  es.emit('welcome', { type: 'welcome', user: 'alice', heartbeat: 30, unread: 2 });
  await flush();
  assert.equal(client.status, 'sse');
  assert.equal(client.unreadCount, 2);
  const n = note();
  es.emit('notification', { type: 'notification', notification: n }, n.id);
  es.emit('unread', { type: 'unread', count: 3 });
  await flush();
  assert.deepEqual(record.notifications, [n.id]);
  assert.equal(client.unreadCount, 3);
  // A server event named "error" is a frame, not a broken connection.
  es.emit('error', { type: 'error', code: 'x', message: 'y' });
  await flush();
  assert.equal(client.status, 'sse');

  await clock.advance(2000); // the first probe comes soon after a fallback
  const probe = WebSocket.last;
  assert.equal(WebSocket.instances.length, 2, 'tried WebSocket again');
  assert.equal(probe.params.get('after'), n.id);
  probe.accept();
  await flush();
  assert.equal(client.status, 'open');
  assert.equal(client.transport, 'websocket');
  assert.ok(es.closed, 'SSE stream closed after the upgrade');
  assert.deepEqual(record.upgrade, { from: 'sse', to: 'websocket' });
  // The same notification via the new socket is not shown again.
  probe.receive({ type: 'notification', notification: n });
  await flush();
  assert.deepEqual(record.notifications, [n.id]);
  client.close();
});

test('SSE close event with a code is handled like a WebSocket close', async () => {
  let n = 0;
  const { clock, WebSocket, EventSource, client } = setup({ token: undefined, getToken: async () => `t${(n += 1)}`, transports: ['sse'] });
  await flush();
  assert.equal(WebSocket.instances.length, 0);
  EventSource.last.emit('welcome', { type: 'welcome', user: 'alice', heartbeat: 30, unread: 0 });
  await flush();
  EventSource.last.emit('close', { type: 'close', code: 4001, reason: 'token expired' });
  await flush();
  await clock.advance(0);
  assert.equal(EventSource.instances.length, 2);
  assert.equal(EventSource.last.params.get('token'), 't2');
  client.close();
});

test('nothing streams -> polling the REST API, catching up without duplicates', async () => {
  const a = note();
  const b = note();
  const c = note();
  let inbox = [a];
  const fetch = makeFetch((method, url) => {
    if (url.pathname === '/api/v1/me/notifications') {
      return { body: { items: [...inbox].reverse(), unread_count: inbox.length, next_before: null } };
    }
    return { status: 404, body: { error: { code: 'not_found', message: 'no' } } };
  });
  const { clock, WebSocket, EventSource, client, record } = setup({ fetch, pollInterval: 10000 });
  await flush();
  WebSocket.last.serverClose(1006);
  await flush();
  EventSource.last.fail();
  await flush();
  await flush();
  assert.equal(client.status, 'polling');
  assert.equal(fetch.calls[0].headers.Authorization, 'Bearer tok1');
  assert.deepEqual(client.notifications.map((n) => n.id), [a.id]);
  assert.deepEqual(record.notifications, [], 'the first page is history, not news');
  inbox = [a, b, c];
  await clock.advance(10000);
  assert.deepEqual(record.notifications, [b.id, c.id], 'new ones announced oldest first');
  assert.equal(client.unreadCount, 3);
  await clock.advance(10000);
  assert.deepEqual(record.notifications, [b.id, c.id], 'and only once');
  client.close();
});

test('markRead over WebSocket: optimistic, sends mark_read with a ref, resolves on ack', async () => {
  const { WebSocket, client, record } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept({ unread: 2 });
  await flush();
  const [a, b] = [note(), note()];
  answerList(ws, [b, a], 2);
  await flush();
  let done = false;
  const promise = client.markRead(a.id).then(() => (done = true));
  assert.equal(client.unreadCount, 1, 'badge drops at once');
  const [frame] = ws.frames('mark_read');
  assert.deepEqual(frame.ids, [a.id]);
  await flush();
  assert.equal(done, false);
  ws.reply('mark_read', { type: 'ack' });
  ws.receive({ type: 'read', ids: [a.id] });
  ws.receive({ type: 'unread', count: 1 });
  await promise;
  assert.equal(client.unreadCount, 1);
  assert.deepEqual(record.unread, [2, 1]);
  client.close();
});

test('a request answered with an error frame rejects with its code', async () => {
  const { WebSocket, client } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  answerList(ws);
  const promise = client.list({ limit: 500 });
  ws.reply('list', { type: 'error', code: 'invalid', message: '`limit` must be an integer 1..100' });
  await assert.rejects(promise, { code: 'invalid' });
  client.close();
});

test('markAllRead and list use REST when not on a WebSocket', async () => {
  const fetch = makeFetch((method, url) => {
    if (method === 'POST' && url.pathname.endsWith('/read-all')) return { body: { ok: true } };
    if (method === 'POST') return { body: {} };
    return { body: { items: [], unread_count: 0, next_before: null } };
  });
  const { WebSocket, EventSource, client } = setup({ fetch });
  await flush();
  WebSocket.last.serverClose(1006);
  await flush();
  EventSource.last.emit('welcome', { type: 'welcome', user: 'alice', heartbeat: 30, unread: 1 });
  await flush();
  await client.markAllRead();
  await client.markRead('00000000000000aa');
  const page = await client.list({ limit: 5, before: '00000000000000ff' });
  assert.deepEqual(page, { items: [], unread_count: 0, next_before: null });
  const paths = fetch.calls.map((c) => `${c.method} ${c.url.pathname}${c.url.search}`);
  assert.ok(paths.includes('POST /api/v1/me/notifications/read-all'));
  assert.ok(paths.includes('POST /api/v1/me/notifications/00000000000000aa/read'));
  assert.ok(paths.includes('GET /api/v1/me/notifications?limit=5&before=00000000000000ff'));
  client.close();
});

test('topics: subscribe on open, again after reconnect; messages routed to the listener', async () => {
  const { clock, WebSocket, client } = setup();
  const got = [];
  const off = client.subscribe('logs', (data) => got.push(data), { filter: { level: 'error' } });
  await flush();
  let ws = WebSocket.last;
  ws.accept();
  await flush();
  const [sub] = ws.frames('subscribe');
  assert.deepEqual({ ...sub, ref: undefined }, { type: 'subscribe', topic: 'logs', batch: true, filter: { level: 'error' }, ref: undefined });
  ws.reply('subscribe', { type: 'ack' });
  ws.receive({ type: 'message', topic: 'logs', data: { line: 1, level: 'error' } });
  ws.receive({ type: 'message', topic: 'logs', data: { line: 3, level: 'info' } });
  ws.receive({ type: 'message', topic: 'other', data: { line: 2 } });
  ws.serverClose(1012);
  await clock.advance(2000);
  ws = WebSocket.last;
  ws.accept();
  await flush();
  assert.equal(ws.frames('subscribe').length, 1, 'resubscribed after reconnect');
  off();
  assert.deepEqual(ws.frames('unsubscribe'), [{ type: 'unsubscribe', topic: 'logs' }]);
  assert.deepEqual(got, [{ line: 1, level: 'error' }]);
  client.close();
});

test('topics: a refused subscription is reported and dropped', async () => {
  const { WebSocket, client, record } = setup();
  client.subscribe('secret', () => {});
  await flush();
  WebSocket.last.accept();
  await flush();
  WebSocket.last.reply('subscribe', { type: 'error', code: 'topic_forbidden', message: 'not allowed' });
  await flush();
  assert.equal(record.errors[0].code, 'topic_forbidden');
  assert.equal(record.errors[0].topic, 'secret');
  assert.equal(client._topics.size, 0);
  client.close();
});

test('topics over SSE go in the URL; a new subscription reopens the stream', async () => {
  const { clock, EventSource, client } = setup({ transports: ['sse'] });
  client.subscribe('logs', () => {});
  await flush();
  assert.equal(EventSource.last.params.get('topics'), 'logs');
  EventSource.last.emit('welcome', { type: 'welcome', user: 'alice', heartbeat: 30, unread: 0 });
  await flush();
  const got = [];
  client.subscribe('deploys', (d) => got.push(d), { filter: { env: 'prod' } });
  await clock.advance(100);
  assert.equal(EventSource.instances.length, 2);
  assert.ok(EventSource.instances[0].closed);
  assert.equal(EventSource.last.params.get('topics'), 'logs,deploys');
  EventSource.last.emit('welcome', { type: 'welcome', user: 'alice', heartbeat: 30, unread: 0 });
  EventSource.last.emit('message', { type: 'message', topic: 'deploys', data: { env: 'prod' } });
  EventSource.last.emit('message', { type: 'message', topic: 'deploys', data: { env: 'dev' } });
  await flush();
  assert.deepEqual(got, [{ env: 'prod' }], 'the filter applies on SSE too');
  client.close();
});

test('resync: the server says too much was missed, the client refetches the inbox', async () => {
  const { WebSocket, client } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  answerList(ws, [note()], 1);
  await flush();
  ws.receive({ type: 'resync', reason: 'missed too many' });
  await flush();
  const fresh = [note(), note()];
  answerList(ws, fresh.slice().reverse(), 2);
  await flush();
  assert.deepEqual(client.notifications.map((n) => n.id), fresh.map((n) => n.id).reverse());
  assert.equal(client.unreadCount, 2);
  assert.equal(client.lastId, fresh[1].id);
  client.close();
});

test('close() stops everything; no reconnect follows', async () => {
  const { clock, WebSocket, client, record } = setup();
  await flush();
  WebSocket.last.accept();
  await flush();
  const pending = client.list();
  client.close();
  await assert.rejects(pending, { code: 'disconnected' });
  assert.equal(client.status, 'closed');
  assert.equal(WebSocket.last.closedWith.code, 1000);
  await clock.advance(600000);
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(record.status.at(-1), 'closed');
});

test('closing before the first connect prevents it', async () => {
  const { WebSocket, client } = setup();
  client.close();
  await flush();
  assert.equal(WebSocket.instances.length, 0);
});

test('tabs: a read in one tab updates the other through BroadcastChannel', async () => {
  const BroadcastChannel = makeBroadcastChannel();
  const one = setup({ broadcast: true, BroadcastChannel });
  const two = setup({ broadcast: true, BroadcastChannel });
  await flush();
  const n = note();
  for (const t of [one, two]) {
    t.WebSocket.last.accept({ unread: 1 });
    await flush();
    answerList(t.WebSocket.last, [n], 1);
  }
  await flush();
  assert.equal(two.client.unreadCount, 1);
  one.client.markRead(n.id).catch(() => {});
  await flush();
  assert.equal(two.client.unreadCount, 0, 'the other tab knew before the server said');
  assert.ok(two.client.notifications[0].read_at);
  one.client.close();
  two.client.close();
});

test('on() returns an unsubscribe function', async () => {
  const { client } = setup({ autoConnect: false });
  const seen = [];
  const off = client.on('status', (s) => seen.push(s));
  const once = [];
  client.once('status', (s) => once.push(s));
  client._setStatus('connecting');
  off();
  client._setStatus('open');
  assert.deepEqual(seen, ['connecting']);
  assert.deepEqual(once, ['connecting']);
  client.close();
});

test('do-not-disturb: a silent notification counts but is announced as silent', async () => {
  const { WebSocket, client, record } = setup();
  const meta = [];
  client.on('notification', (_n, m) => meta.push(m));
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  answerList(ws);
  ws.receive({ type: 'notification', notification: note(), silent: true });
  ws.receive({ type: 'notification', notification: note() });
  await flush();
  assert.equal(record.notifications.length, 2);
  assert.equal(client.unreadCount, 2, 'the badge still counts');
  assert.deepEqual(meta, [{ silent: true }, { silent: false }]);
  client.close();
});

test('preferences: read, merged with PATCH, replaced with PUT; changes arrive as events', async () => {
  const fetch = makeFetch((method, url, init) => ({
    status: 200,
    body: { method, path: url.pathname, sent: init.body ? JSON.parse(init.body) : null },
  }));
  const { WebSocket, client } = setup({ fetch });
  const seen = [];
  client.on('preferences', (p) => seen.push(p));
  assert.deepEqual(await client.preferences(), { method: 'GET', path: '/api/v1/me/preferences', sent: null });
  const off = { categories: { news: { enabled: false } } };
  assert.deepEqual(await client.setPreferences(off), { method: 'PATCH', path: '/api/v1/me/preferences', sent: off });
  assert.equal((await client.setPreferences(off, { replace: true })).method, 'PUT');
  assert.equal(fetch.calls[1].headers['Content-Type'], 'application/json');
  await flush();
  WebSocket.last.accept();
  await flush();
  WebSocket.last.receive({ type: 'preferences', preferences: off });
  await flush();
  assert.deepEqual(seen, [off]);
  client.close();
});
