// Inbox actions and changes after sending: the reducer, the resume point, and the
// client's methods against a fake server.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Tidings, Dedup, createInbox, reduceInbox, snoozeChoices } from '../tidings.js';
import { FakeClock, makeWebSocket, makeEventSource, makeFetch, note, flush } from './fakes.mjs';

const BASE = 'https://n.example.com';

function inboxOf(...items) {
  return reduceInbox(createInbox(), {
    type: 'list', items, unread_count: items.filter((n) => !n.read_at).length,
  });
}

test('updated from the log merges content in place and keeps read state', () => {
  const a = note({ title: 'Uploading: 10%', read_at: '2026-01-01T00:00:00.000Z' });
  const state = inboxOf(a);
  const next = reduceInbox(state, {
    type: 'updated', position: '7fff000000000000', notification: { id: a.id, title: 'Uploading: 60%', data: { p: 60 } },
  });
  assert.equal(next.items.length, 1);
  assert.equal(next.items[0].title, 'Uploading: 60%');
  assert.equal(next.items[0].read_at, a.read_at, 'read state is the user\'s own');
  assert.equal(next.unread, 0);
  const unknown = reduceInbox(state, { type: 'updated', position: '7fff000000000001', notification: note() });
  assert.equal(unknown, state, 'a shared change to an item not held is ignored');
});

test('a user\'s own updated frame can mark unread again or bring an item back', () => {
  const a = note({ read_at: '2026-01-01T00:00:00.000Z' });
  const state = inboxOf(a);
  const unread = reduceInbox(state, { type: 'updated', notification: { ...a, read_at: null } });
  assert.equal(unread.unread, 1);
  assert.equal(reduceInbox(unread, { type: 'updated', notification: { ...a, read_at: null } }), unread);
  const b = note();
  const back = reduceInbox(state, { type: 'updated', notification: b });
  assert.deepEqual(back.items.map((n) => n.id), [b.id, a.id]);
  assert.equal(back.unread, 1);
  const archived = reduceInbox(state, { type: 'updated', notification: { ...note(), archived_at: 'x' } });
  assert.equal(archived, state, 'an archived item does not enter the inbox');
});

test('archived and snoozed items leave the inbox and its count; a woken one returns', () => {
  const a = note();
  const b = note();
  const state = inboxOf(a, b);
  const archived = reduceInbox(state, { type: 'archived', ids: [a.id] });
  assert.deepEqual(archived.items.map((n) => n.id), [b.id]);
  assert.equal(archived.unread, 1);
  const snoozed = reduceInbox(archived, { type: 'snoozed', ids: [b.id], until: '2030-01-01T00:00:00Z' });
  assert.deepEqual(snoozed.items, []);
  assert.equal(snoozed.unread, 0);
  const woke = reduceInbox(snoozed, { type: 'notification', notification: b, woke: true });
  assert.deepEqual(woke.items.map((n) => n.id), [b.id]);
  assert.equal(woke.unread, 1);
});

test('the resume point advances to change positions, never backwards', () => {
  const dedup = new Dedup({ last: '0000000000000005' });
  dedup.advance('0000000000000009');
  assert.equal(dedup.last, '0000000000000009');
  dedup.advance('0000000000000007');
  dedup.advance('not an id');
  assert.equal(dedup.last, '0000000000000009');
});

test('snooze choices lie ahead, soonest first', () => {
  const now = new Date(2026, 0, 7, 10, 30); // a Wednesday morning
  const choices = snoozeChoices(now);
  assert.deepEqual(choices.map((c) => c.id), ['hour', 'evening', 'tomorrow', 'week']);
  for (let i = 1; i < choices.length; i += 1) assert.ok(choices[i].until > choices[i - 1].until);
  assert.equal(choices[3].until.getDay(), 1, 'next week starts on Monday');
  assert.deepEqual(snoozeChoices(new Date(2026, 0, 7, 20, 0)).map((c) => c.id), ['hour', 'tomorrow', 'week']);
});

function setup(handler) {
  const clock = new FakeClock();
  const WebSocket = makeWebSocket();
  const fetch = makeFetch(handler || (() => ({ status: 200, body: {} })));
  const client = new Tidings({
    url: BASE, token: 'tok1', WebSocket, EventSource: makeEventSource(), fetch, broadcast: false,
    setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now, random: () => 0.5,
  });
  return { clock, WebSocket, fetch, client };
}

async function open(WebSocket, items) {
  await flush();
  const ws = WebSocket.last;
  ws.accept({ unread: items.filter((n) => !n.read_at).length });
  await flush();
  ws.reply('list', { type: 'list', items, unread_count: items.filter((n) => !n.read_at).length, next_before: null });
  await flush();
  return ws;
}

test('live updates change an item in place and move the resume point', async () => {
  const { WebSocket, client } = setup();
  const a = note({ title: '10%' });
  const ws = await open(WebSocket, [a]);
  const seen = [];
  client.on('updated', (n, meta) => seen.push([n.title, meta.shared]));
  const position = '7000000000000001';
  ws.receive({ type: 'updated', position, notification: { id: a.id, title: '100%' } });
  await flush();
  assert.deepEqual(client.notifications.map((n) => n.title), ['100%']);
  assert.deepEqual(seen, [['100%', true]]);
  assert.equal(client.lastId, position);
  ws.receive({ type: 'deleted', ids: [a.id], retracted: true, position: '7000000000000002' });
  await flush();
  assert.deepEqual(client.notifications, []);
  assert.equal(client.lastId, '7000000000000002');
  client.close();
});

test('act goes over the WebSocket when open, and over HTTP otherwise', async () => {
  const { WebSocket, fetch, client } = setup(() => ({ status: 202, body: { accepted: true } }));
  const a = note({ actions: [{ id: 'approve', label: 'Approve' }] });
  const ws = await open(WebSocket, [a]);
  const acked = client.act(a.id, 'approve');
  const [frame] = ws.frames('action');
  assert.deepEqual({ id: frame.id, action: frame.action }, { id: a.id, action: 'approve' });
  ws.reply('action', { type: 'ack', id: a.id, action: 'approve' });
  assert.equal((await acked).type, 'ack');
  const refused = client.act(a.id, 'nope');
  ws.reply('action', { type: 'error', code: 'not_found', message: 'no such action' });
  await assert.rejects(refused, (err) => err.code === 'not_found');
  ws.serverClose(1006);
  await client.act(a.id, 'approve');
  const call = fetch.calls.at(-1);
  assert.equal(call.method, 'POST');
  assert.equal(call.url.pathname, `/api/v1/me/notifications/${a.id}/actions/approve`);
  client.close();
});

test('mark unread, archive, snooze and filtered lists call the REST API', async () => {
  const a = note({ read_at: '2026-01-01T00:00:00.000Z' });
  const b = note();
  const { WebSocket, fetch, client } = setup((method, url) => {
    if (url.pathname.endsWith('/unread')) return { body: { ...a, read_at: null } };
    if (url.pathname.endsWith('/archive-read')) return { body: { ids: [], unread_count: 0 } };
    if (url.pathname.endsWith('/snooze')) return { body: { ...b, snoozed_until: '2030-01-01T00:00:00.000Z' } };
    if (url.pathname.endsWith('/notifications')) return { body: { items: [a], unread_count: 0, next_before: null } };
    return { body: a };
  });
  const ws = await open(WebSocket, [b, a]);
  await client.markUnread(a.id);
  assert.equal(client.unreadCount, 2);
  await client.snooze(b.id, new Date('2030-01-01T00:00:00Z'));
  assert.deepEqual(client.notifications.map((n) => n.id), [a.id]);
  assert.equal(client.unreadCount, 1);
  const snoozeCall = fetch.calls.find((c) => c.url.pathname.endsWith('/snooze'));
  assert.ok(snoozeCall);
  await client.archive(a.id);
  assert.deepEqual(client.notifications, []);
  const viewed = client.list({ archived: true, type: ['build', 'deploy'], level: 'error' });
  const [request] = ws.frames('list').slice(-1);
  assert.deepEqual([request.archived, request.types, request.levels], [true, ['build', 'deploy'], ['error']]);
  ws.reply('list', { type: 'list', items: [a], unread_count: 0, next_before: null });
  assert.deepEqual((await viewed).items.map((n) => n.id), [a.id]);
  assert.deepEqual(client.notifications, [], 'a filtered view is not the inbox');
  ws.serverClose(1006);
  await client.list({ archived: true, category: 'news' });
  const listed = fetch.calls.at(-1).url.searchParams;
  assert.equal(listed.get('archived'), 'true');
  assert.deepEqual(listed.getAll('category'), ['news']);
  client.close();
});

test('the bell reads progress from data.progress or data.percent', async () => {
  const { progressOf } = await import('../tidings-bell.js');
  assert.equal(progressOf({ percent: 60 }), 60);
  assert.equal(progressOf({ progress: 140 }), 100);
  assert.equal(progressOf({ progress: '50' }), null);
  assert.equal(progressOf(null), null);
});
