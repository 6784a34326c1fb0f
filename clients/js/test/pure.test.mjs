import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  backoffDelay, closePolicy, normalizeBase, buildUrl, wsUrl, sseUrl, apiUrl, tokenExpiry, tokenClaims,
  Dedup, createInbox, reduceInbox, topicMatches, matchesFilter, CloseCode, isResumeId,
} from '../tidings.js';
import { timeAgo, safeUrl, badgeText } from '../tidings-bell.js';
import { note } from './fakes.mjs';

// -- backoff -----------------------------------------------------------------------------

test('backoff: full jitter stays within [0, min(cap, base * 2^attempt))', () => {
  const base = 500;
  const cap = 30000;
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const ceiling = Math.min(cap, base * 2 ** attempt);
    assert.equal(backoffDelay(attempt, { base, cap, random: () => 0 }), 0);
    const high = backoffDelay(attempt, { base, cap, random: () => 0.999999 });
    assert.ok(high < ceiling && high >= ceiling - 1, `attempt ${attempt}: ${high} vs ${ceiling}`);
    for (let i = 0; i < 50; i += 1) {
      const d = backoffDelay(attempt, { base, cap });
      assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d}`);
      assert.ok(Number.isInteger(d));
    }
  }
});

test('backoff: the ceiling doubles and then holds at the cap', () => {
  const half = (n) => backoffDelay(n, { base: 100, cap: 1000, random: () => 0.5 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(half), [50, 100, 200, 400, 500, 500, 500]);
  assert.equal(half(-3), 50, 'negative attempts count as the first');
});

test('backoff: jitter actually spreads clients out', () => {
  const values = new Set(Array.from({ length: 200 }, () => backoffDelay(6)));
  assert.ok(values.size > 150);
});

test('close policy follows the contract', () => {
  assert.equal(closePolicy(CloseCode.FORBIDDEN).retry, false);
  assert.equal(closePolicy(CloseCode.UNAUTHENTICATED).refreshToken, true);
  assert.ok(closePolicy(CloseCode.RATE_LIMITED).minDelay >= 5000);
  assert.ok(closePolicy(CloseCode.TOO_MANY_CONNECTIONS).minDelay >= 15000);
  assert.equal(closePolicy(CloseCode.SLOW_CONSUMER).minDelay, 0);
  for (const code of [1009, 1012, 4001, 4003, 4008, 4009, 4010]) {
    assert.equal(closePolicy(code).fallback, false, `${code} came from the server: no fallback`);
  }
  assert.equal(closePolicy(1006).fallback, true);
  assert.equal(closePolicy(1000).fallback, true, 'a proxy may close a socket it will not carry');
  assert.equal(closePolicy(1006).retry, true);
});

// -- URLs --------------------------------------------------------------------------------

test('normalizeBase accepts http, ws, paths and nothing', () => {
  assert.equal(normalizeBase('https://n.example.com/'), 'https://n.example.com');
  assert.equal(normalizeBase('https://n.example.com/tidings//'), 'https://n.example.com/tidings');
  assert.equal(normalizeBase('wss://n.example.com'), 'https://n.example.com');
  assert.equal(normalizeBase('ws://localhost:8000'), 'http://localhost:8000');
  assert.equal(normalizeBase('/tidings', 'http://app.test'), 'http://app.test/tidings');
  assert.equal(normalizeBase(undefined, 'http://app.test'), 'http://app.test');
  assert.equal(normalizeBase('http://h.test/x?y=1#z'), 'http://h.test/x');
});

test('stream and API URLs carry token and resume point, encoded', () => {
  const base = 'https://n.example.com/tidings';
  assert.equal(wsUrl(base, { token: 'a.b.c' }), 'wss://n.example.com/tidings/ws?token=a.b.c');
  assert.equal(wsUrl('http://localhost:8000', { token: 't', after: '0190000000000001' }),
    'ws://localhost:8000/ws?token=t&after=0190000000000001');
  assert.equal(sseUrl(base, { token: 't+/=', after: null }), 'https://n.example.com/tidings/api/v1/me/stream?token=t%2B%2F%3D');
  assert.equal(sseUrl(base, { token: 't', topics: ['logs', 'deploys'] }),
    'https://n.example.com/tidings/api/v1/me/stream?token=t&topics=logs%2Cdeploys');
  assert.equal(apiUrl(base, '/me/notifications', { limit: 20, before: undefined, unread: '' }),
    'https://n.example.com/tidings/api/v1/me/notifications?limit=20');
  assert.equal(buildUrl('http://h', '/x', { t: ['a', 'b'] }), 'http://h/x?t=a&t=b');
});

test('tokenExpiry reads exp from a JWT, null otherwise', () => {
  const payload = Buffer.from(JSON.stringify({ sub: 'alice', exp: 1900000000 })).toString('base64url');
  assert.equal(tokenExpiry(`h.${payload}.s`), 1900000000);
  const noExp = Buffer.from(JSON.stringify({ sub: 'a' })).toString('base64url');
  assert.equal(tokenExpiry(`h.${noExp}.s`), null);
  assert.equal(tokenExpiry('garbage'), null);
  assert.equal(tokenExpiry(undefined), null);
  assert.equal(tokenClaims(`h.${payload}.s`).sub, 'alice');
  assert.equal(tokenClaims('a.!!!.c'), null);
});

test('topic patterns match like the server grants them', () => {
  assert.ok(topicMatches('logs', 'logs'));
  assert.ok(topicMatches('project:*', 'project:42'));
  assert.ok(topicMatches('a?c', 'abc'));
  assert.ok(!topicMatches('project:*', 'projects'));
  assert.ok(!topicMatches('a.b', 'axb'), 'dots are literal');
});

test('topic filters: every field must match one of its values', () => {
  assert.ok(matchesFilter(null, { a: 1 }));
  assert.ok(matchesFilter({ level: 'error' }, { level: 'error', x: 1 }));
  assert.ok(matchesFilter({ level: ['error', 'warning'], env: 'prod' }, { level: 'warning', env: 'prod' }));
  assert.ok(!matchesFilter({ level: 'error' }, { level: 'info' }));
  assert.ok(!matchesFilter({ level: 'error' }, {}));
  assert.ok(!matchesFilter({ tags: 'a' }, { tags: ['a'] }), 'lists never match');
  assert.ok(!matchesFilter({ a: 1 }, 'text'));
});

// -- dedup -------------------------------------------------------------------------------

test('dedup accepts an id once and tracks the newest as the resume point', () => {
  const d = new Dedup();
  assert.equal(d.last, null);
  assert.ok(d.accept('0000000000000002'));
  assert.ok(!d.accept('0000000000000002'));
  assert.ok(d.accept('0000000000000001'), 'an older id not seen before is still new');
  assert.equal(d.last, '0000000000000002', 'the resume point never goes back');
  assert.ok(d.accept('0000000000000003'));
  assert.equal(d.last, '0000000000000003');
  assert.ok(!d.accept(undefined));
});

test('dedup window is bounded; evicted ids stay rejected through the floor', () => {
  const d = new Dedup({ size: 3 });
  const ids = ['01', '02', '03', '04', '05'].map((x) => x.padStart(16, '0'));
  for (const id of ids) assert.ok(d.accept(id));
  assert.equal(d._seen.size, 3);
  assert.equal(d.floor, ids[1]);
  for (const id of ids) assert.ok(!d.accept(id), `${id} seen`);
  assert.ok(d.has(ids[0]));
});

test('dedup can start from a resume point', () => {
  const d = new Dedup({ last: '0000000000000010' });
  assert.equal(d.last, '0000000000000010');
  assert.ok(d.accept('0000000000000011'));
});

// -- inbox reducer -------------------------------------------------------------------------

test('inbox: a new notification is inserted newest first and counted unread once', () => {
  const a = note();
  const b = note();
  let s = createInbox();
  s = reduceInbox(s, { type: 'notification', notification: b });
  s = reduceInbox(s, { type: 'notification', notification: a });
  assert.deepEqual(s.items.map((n) => n.id), [b.id, a.id]);
  assert.equal(s.unread, 2);
  const again = reduceInbox(s, { type: 'notification', notification: a });
  assert.equal(again, s, 'a duplicate changes nothing');
  const read = reduceInbox(s, { type: 'notification', notification: note({ read_at: '2024-01-01T00:00:00Z' }) });
  assert.equal(read.unread, 2, 'an already-read notification is not unread');
});

test('inbox: read is idempotent, so an optimistic update and the server echo count once', () => {
  const [a, b] = [note(), note()];
  let s = createInbox();
  for (const n of [a, b]) s = reduceInbox(s, { type: 'notification', notification: n });
  s = reduceInbox(s, { type: 'read', ids: [a.id] });
  assert.equal(s.unread, 1);
  assert.ok(s.items.find((n) => n.id === a.id).read_at);
  assert.equal(reduceInbox(s, { type: 'read', ids: [a.id] }), s);
  assert.equal(reduceInbox(s, { type: 'read', ids: ['ffffffffffffffff'] }), s, 'unknown ids: wait for the server count');
  s = reduceInbox(s, { type: 'unread', count: 7 });
  assert.equal(s.unread, 7, 'the server count is the truth');
});

test('inbox: read_all marks through an id and keeps newer ones unread', () => {
  const [a, b, c] = [note(), note(), note()];
  let s = createInbox();
  for (const n of [a, b, c]) s = reduceInbox(s, { type: 'notification', notification: n });
  const through = reduceInbox(s, { type: 'read_all', through: b.id });
  assert.equal(through.unread, 1);
  assert.equal(through.items.find((n) => n.id === c.id).read_at, null);
  const all = reduceInbox(s, { type: 'read_all' });
  assert.equal(all.unread, 0);
  assert.ok(all.items.every((n) => n.read_at));
});

test('inbox: deleted removes items and their unread weight', () => {
  const [a, b] = [note(), note({ read_at: '2024-01-01T00:00:00Z' })];
  let s = createInbox();
  for (const n of [a, b]) s = reduceInbox(s, { type: 'notification', notification: n });
  assert.equal(s.unread, 1);
  s = reduceInbox(s, { type: 'deleted', ids: [a.id, b.id] });
  assert.deepEqual(s.items, []);
  assert.equal(s.unread, 0);
  assert.equal(reduceInbox(s, { type: 'deleted', ids: [a.id] }), s);
});

test('inbox: a list page merges, refreshes read state, and sets the count', () => {
  const [a, b, c] = [note(), note(), note()];
  let s = createInbox();
  s = reduceInbox(s, { type: 'notification', notification: c });
  s = reduceInbox(s, { type: 'list', items: [{ ...b, read_at: '2024-01-01T00:00:00Z' }, a], unread_count: 4 });
  assert.deepEqual(s.items.map((n) => n.id), [c.id, b.id, a.id]);
  // c is newer than the page, so the count taken with the page did not include it.
  assert.equal(s.unread, 5);
  assert.ok(s.loaded);
  s = reduceInbox(s, { type: 'list', items: [c, b, a], unread_count: 2 });
  assert.equal(s.unread, 2);
  const older = reduceInbox(s, { type: 'list', items: [note()], unread_count: 99, before: a.id });
  assert.equal(older.unread, 2, 'an older page does not move the count');
  const replaced = reduceInbox(s, { type: 'list', items: [b], unread_count: 0, replace: true });
  assert.deepEqual(replaced.items.map((n) => n.id), [b.id]);
});

test('inbox: keeps at most max items', () => {
  let s = createInbox();
  for (let i = 0; i < 10; i += 1) s = reduceInbox(s, { type: 'notification', notification: note() }, { max: 4 });
  assert.equal(s.items.length, 4);
  assert.equal(s.unread, 10, 'dropping from memory is not reading');
});

test('inbox: unknown frames and bad payloads change nothing', () => {
  const s = createInbox();
  for (const frame of [{ type: 'ping' }, { type: 'notification' }, { type: 'unread', count: 'x' }, null, {}]) {
    assert.equal(reduceInbox(s, frame), s);
  }
});

// -- bell helpers --------------------------------------------------------------------------

test('timeAgo speaks in friendly units', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  assert.equal(timeAgo('2024-05-01T11:59:50Z', now, 'en'), 'just now');
  assert.equal(timeAgo('2024-05-01T11:55:00Z', now, 'en'), '5 minutes ago');
  assert.equal(timeAgo('2024-05-01T10:00:00Z', now, 'en'), '2 hours ago');
  assert.equal(timeAgo('2024-04-30T12:00:00Z', now, 'en'), 'yesterday');
  assert.equal(timeAgo('not a date', now, 'en'), '');
});

test('safeUrl keeps http(s) and relative links only', () => {
  assert.equal(safeUrl('https://x.test/a'), 'https://x.test/a');
  assert.equal(safeUrl('/tasks/1', 'https://app.test/'), 'https://app.test/tasks/1');
  assert.equal(safeUrl('javascript:alert(1)', 'https://app.test/'), null);
  assert.equal(safeUrl('data:text/html,hi', 'https://app.test/'), null);
  assert.equal(safeUrl(null), null);
});

test('badge text caps at 99+', () => {
  assert.deepEqual([0, -1, 1, 99, 100].map(badgeText), ['', '', '1', '99', '99+']);
});

test('isResumeId: 16 lowercase hex digits of at most 63 bits', () => {
  for (const id of ['0000000000000000', '0190000000000001', '7fffffffffffffff']) assert.ok(isResumeId(id), id);
  for (const id of ['8000000000000000', 'ffffffffffffffff', '0190000000000001 ', '019000000000000', 'ABCDEF0123456789', null, 7]) {
    assert.ok(!isResumeId(id), String(id));
  }
});
