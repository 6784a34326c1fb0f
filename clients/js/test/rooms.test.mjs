// Topics as rooms in tidings.js: resume after the newest id, batches, presence, publish.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Tidings } from '../tidings.js';
import { Room, compareMessageIds, topicMatches, messagesOf } from '../tidings-rooms.js';
import { FakeClock, makeWebSocket, makeEventSource, makeFetch, flush } from './fakes.mjs';

function setup(options = {}) {
  const clock = new FakeClock();
  const WebSocket = makeWebSocket();
  const EventSource = makeEventSource();
  const calls = [];
  const fetch = makeFetch((method, url, init) => {
    calls.push({ url: String(url), init });
    return { status: 202, body: { topic: 'room', published: true } };
  });
  const client = new Tidings({
    url: 'https://n.example.com', token: 'tok1', WebSocket, EventSource, fetch, broadcast: false,
    setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now, random: () => 0.5,
    ...options,
  });
  return { clock, WebSocket, EventSource, client, calls };
}

const msg = (topic, id, data) => ({ type: 'message', topic, id, ts: Number(id.split('-')[0]), data });

test('message ids compare by time then sequence', () => {
  assert.ok(compareMessageIds('17-2', '17-10') < 0);
  assert.ok(compareMessageIds('18-0', '17-10') > 0);
  assert.equal(compareMessageIds('5-5', '5-5'), 0);
});

test('globs match like the server: * ? and [sets]', () => {
  assert.ok(topicMatches('logs.*', 'logs.api'));
  assert.ok(topicMatches('logs.?', 'logs.a'));
  assert.ok(topicMatches('logs.[ab]', 'logs.b'));
  assert.ok(!topicMatches('logs.[ab]', 'logs.c'));
  assert.ok(!topicMatches('logs.*', 'billing'));
});

test('a room asks for history first, then resumes after the newest id it saw', () => {
  const room = new Room('logs.*', { history: 50, presence: false });
  assert.deepEqual(room.subscribeFrame(), { type: 'subscribe', topic: 'logs.*', batch: true, history: 50 });
  assert.ok(room.accept(msg('logs.api', '10-0', 1)));
  assert.ok(room.accept(msg('logs.db', '12-0', 2)));
  assert.ok(!room.accept(msg('logs.api', '10-0', 1)), 'a repeat is dropped');
  assert.deepEqual(room.subscribeFrame(), { type: 'subscribe', topic: 'logs.*', batch: true, since: '12-0' });
});

test('a batch frame carries its messages in order', () => {
  const batch = { type: 'batch', messages: [msg('a', '1-0', 1), msg('a', '1-1', 2)], skipped: 3 };
  assert.deepEqual(messagesOf(batch).map((m) => m.data), [1, 2]);
});

test('after a reconnect the subscription resumes with since, and repeats are dropped', async () => {
  const { clock, WebSocket, client } = setup();
  const got = [];
  client.subscribe('room.1', (data) => got.push(data), { history: 10 });
  await flush();
  let ws = WebSocket.last;
  ws.accept();
  await flush();
  assert.equal(ws.frames('subscribe')[0].history, 10);
  ws.reply('subscribe', { type: 'ack' });
  ws.receive(msg('room.1', '100-0', 'a'));
  ws.receive({ type: 'batch', messages: [msg('room.1', '100-1', 'b'), msg('room.1', '101-0', 'c')], skipped: 0 });
  ws.serverClose(1012);
  await clock.advance(2000);
  ws = WebSocket.last;
  ws.accept();
  await flush();
  const [again] = ws.frames('subscribe');
  assert.equal(again.since, '101-0');
  assert.equal(again.history, undefined);
  ws.reply('subscribe', { type: 'ack' });
  ws.receive(msg('room.1', '101-0', 'c'));
  ws.receive(msg('room.1', '102-0', 'd'));
  assert.deepEqual(got, ['a', 'b', 'c', 'd']);
  client.close();
});

test('presence: the snapshot, then join and leave events', async () => {
  const { WebSocket, client } = setup();
  const seen = [];
  client.on('presence', (p) => seen.push(['presence', p.users.join(',')]));
  client.on('join', (p) => seen.push(['join', p.user]));
  client.on('leave', (p) => seen.push(['leave', p.user]));
  client.subscribe('project.7', () => {}, { presence: true });
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  assert.equal(ws.frames('subscribe')[0].presence, true);
  ws.receive({ type: 'presence', topic: 'project.7', users: ['ann'] });
  ws.receive({ type: 'join', topic: 'project.7', user: 'bob' });
  ws.receive({ type: 'leave', topic: 'project.7', user: 'ann' });
  assert.deepEqual(seen, [
    ['presence', 'ann'], ['join', 'bob'], ['presence', 'ann,bob'], ['leave', 'ann'], ['presence', 'bob'],
  ]);
  assert.deepEqual(client.presence('project.7'), ['bob']);
  client.close();
});

test('publish goes over the WebSocket when open, else over REST', async () => {
  const { WebSocket, client, calls } = setup();
  await flush();
  const ws = WebSocket.last;
  ws.accept();
  await flush();
  const acked = client.publish('room.1', { text: 'hi' });
  await flush();
  const [frame] = ws.frames('publish');
  assert.deepEqual({ ...frame, ref: undefined }, { type: 'publish', topic: 'room.1', data: { text: 'hi' }, ref: undefined });
  ws.reply('publish', { type: 'ack', topic: 'room.1' });
  assert.equal((await acked).type, 'ack');
  ws.serverClose(4003);
  await flush();
  await client.publish('room.1', { text: 'rest' });
  const post = calls.find((c) => c.url.includes('/me/topics/room.1/messages'));
  assert.ok(post, 'posted over REST');
  assert.equal(post.init.method, 'POST');
  client.close();
});

test('SSE names globs and the history in the URL', async () => {
  const { EventSource, client } = setup({ transports: ['sse'] });
  client.subscribe('logs.*', () => {}, { history: 100 });
  await flush();
  assert.equal(EventSource.last.params.get('topics'), 'logs.*');
  assert.equal(EventSource.last.params.get('history'), '100');
  client.close();
});
