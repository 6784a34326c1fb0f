// useTidings and useTopic rendered with react-dom in a jsdom document, the client on
// fake transports: what a component shows follows what the server sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FakeClock, makeWebSocket, makeEventSource, makeFetch, note, flush } from './fakes.mjs';

let React, ReactDOMClient, JSDOM;
try {
  React = await import('react');
  ReactDOMClient = await import('react-dom/client');
  ({ JSDOM } = await import('jsdom'));
} catch (err) {
  // scripts/test installs clients/js's devDependencies; without them only CI must fail.
  if (['1', 'true', 'yes'].includes(String(process.env.CI).toLowerCase())) throw err;
}
const skip = React ? false : 'react, react-dom and jsdom are not installed (npm install in clients/js)';

const { useTidings, useTopic } = await import('../react.js').catch(() => ({}));

function environment() {
  const dom = new JSDOM('<!doctype html><div id="root"></div>');
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  const WebSocket = makeWebSocket();
  const clock = new FakeClock(); // no real timers: nothing fires after a test
  const options = {
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    url: 'https://n.example.com',
    WebSocket,
    EventSource: makeEventSource(),
    fetch: makeFetch(() => ({ status: 503, body: {} })),
    broadcast: false,
  };
  const root = ReactDOMClient.createRoot(document.getElementById('root'));
  const render = (element) => React.act(async () => root.render(element));
  const act = (fn) => React.act(async () => { fn(); await flush(); });
  return { WebSocket, options, root, render, act, text: () => document.getElementById('root').textContent };
}

function Inbox({ options, seen }) {
  const t = useTidings(options);
  seen.push(t);
  return React.createElement(
    'p', null, `${t.status}|${t.unreadCount}|${t.notifications.map((n) => n.title).join(',')}`,
  );
}

test('useTidings shows the inbox and its changes as they arrive', { skip }, async () => {
  const env = environment();
  const seen = [];
  await env.render(React.createElement(Inbox, { options: { ...env.options, token: 'tok1' }, seen }));
  assert.equal(env.text(), 'connecting|0|');
  const ws = env.WebSocket.last;
  assert.equal(ws.url, 'wss://n.example.com/ws?token=tok1');
  const first = note({ title: 'first' });
  await env.act(() => ws.accept({ unread: 1 }));
  await env.act(() => ws.reply('list', { type: 'list', items: [first], unread_count: 1, next_before: null }));
  assert.equal(env.text(), 'open|1|first');
  await env.act(() => ws.receive({ type: 'notification', notification: note({ title: 'second' }) }));
  assert.equal(env.text(), 'open|2|second,first');
  let done;
  await env.act(() => { done = seen.at(-1).markAllRead(); });
  assert.equal(ws.frames('mark_all_read').length, 1);
  await env.act(() => ws.reply('mark_all_read', { type: 'ack', through: first.id }));
  await done;
  assert.equal(env.text(), 'open|0|second,first');
  await React.act(async () => env.root.unmount());
  assert.ok(ws.closedWith, 'unmounting closes the client it created');
});

test('a new token goes to the same client; no token means idle', { skip }, async () => {
  const env = environment();
  const seen = [];
  await env.render(React.createElement(Inbox, { options: { ...env.options }, seen }));
  assert.equal(env.WebSocket.instances.length, 0);
  assert.equal(seen.at(-1).client, null);
  await env.render(React.createElement(Inbox, { options: { ...env.options, token: 'a' }, seen }));
  const client = seen.at(-1).client;
  assert.ok(client);
  await env.render(React.createElement(Inbox, { options: { ...env.options, token: 'b' }, seen }));
  assert.equal(seen.at(-1).client, client);
  await React.act(async () => env.root.unmount());
});

test('useTidings({client}) uses and keeps a client it did not create', { skip }, async () => {
  const env = environment();
  const { Tidings } = await import('../tidings.js');
  const client = new Tidings({ ...env.options, token: 'tok1' });
  const seen = [];
  await env.render(React.createElement(Inbox, { options: { client }, seen }));
  await env.act(() => env.WebSocket.last.accept({ unread: 4 }));
  assert.equal(seen.at(-1).unreadCount, 4);
  await React.act(async () => env.root.unmount());
  assert.equal(env.WebSocket.last.closedWith, null, 'not closed: the caller owns it');
  client.close();
});

test('useTopic delivers topic messages while mounted', { skip }, async () => {
  const env = environment();
  const { Tidings } = await import('../tidings.js');
  const client = new Tidings({ ...env.options, token: 'tok1' });
  const got = [];
  function Room() {
    useTopic(client, 'room.1', (data) => got.push(data));
    return null;
  }
  await env.render(React.createElement(Room));
  const ws = env.WebSocket.last;
  await env.act(() => ws.accept());
  const [subscribe] = ws.frames('subscribe');
  assert.equal(subscribe.topic, 'room.1');
  await env.act(() => ws.receive({ type: 'message', topic: 'room.1', data: { x: 1 } }));
  assert.deepEqual(got, [{ x: 1 }]);
  await React.act(async () => env.root.unmount());
  assert.equal(ws.frames('unsubscribe').length, 1);
  client.close();
});
