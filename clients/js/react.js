// React bindings for tidings.js: `useTidings` keeps a component in step with the user's
// inbox and connection; `useTopic` subscribes to a topic for a component's lifetime.
// React is a peer dependency, imported, never bundled.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';

import { Tidings } from './tidings.js';

const IDLE = Object.freeze({
  status: 'connecting',
  notifications: Object.freeze([]),
  unreadCount: 0,
  loaded: false,
  user: null,
  error: null,
});

/**
 * A store over one client for useSyncExternalStore: the snapshot is a new object only
 * when the client reports a change, so renders happen only then.
 */
export function clientStore(client) {
  const listeners = new Set();
  let error = null;
  let snapshot = read(client, error);
  const update = () => {
    snapshot = read(client, error);
    for (const listener of listeners) listener();
  };
  const offs = [
    client.on('change', update),
    client.on('status', update),
    client.on('unread', update),
    client.on('welcome', update),
    client.on('error', (e) => {
      error = e;
      update();
    }),
  ];
  return {
    getSnapshot: () => snapshot,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      for (const off of offs) off();
      listeners.clear();
    },
  };
}

function read(client, error) {
  return Object.freeze({
    status: client.status,
    notifications: Object.freeze(client.notifications),
    unreadCount: client.unreadCount,
    loaded: client.loaded,
    user: client.user,
    error: error ?? client.lastError ?? null,
  });
}

const noStore = {
  getSnapshot: () => IDLE,
  subscribe: () => () => {},
  close() {},
};

/**
 * The signed-in user's notifications, live.
 *
 * `useTidings({ url, token })` or `useTidings({ url, getToken })` creates a client when
 * the component mounts and closes it when it unmounts; a new `token` is handed to the
 * same client, a new `url` makes a new one. `useTidings({ client })` uses a client you
 * own (not closed here). With neither a token, getToken nor client it stays idle.
 */
export function useTidings(options = {}) {
  const { client: given, url, token, getToken, ...rest } = options;
  const getTokenRef = useRef(getToken);
  getTokenRef.current = getToken;
  const restRef = useRef(rest);
  restRef.current = rest;
  const [own, setOwn] = useState(null);
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const enabled = !given && (token != null || getToken != null);

  useEffect(() => {
    if (!enabled) return undefined;
    const created = new Tidings({
      ...restRef.current,
      url,
      ...(tokenRef.current != null
        ? { token: tokenRef.current }
        : { getToken: () => getTokenRef.current() }),
    });
    setOwn(created);
    return () => {
      created.close();
      setOwn(null);
    };
  }, [enabled, url]);

  useEffect(() => {
    if (own && token != null) own.setToken(token);
  }, [own, token]);

  const client = given ?? own;
  const store = useMemo(() => (client ? clientStore(client) : noStore), [client]);
  useEffect(() => () => store.close(), [store]);
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);

  const markRead = useCallback((ids) => client?.markRead(ids), [client]);
  const markAllRead = useCallback(() => client?.markAllRead(), [client]);
  const remove = useCallback((id) => client?.remove(id), [client]);
  return useMemo(
    () => ({ ...state, client, markRead, markAllRead, remove }),
    [state, client, markRead, markAllRead, remove],
  );
}

/** Call `onMessage(data, frame)` for each message on `topic` while mounted. */
export function useTopic(client, topic, onMessage, options) {
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const filter = options?.filter ? JSON.stringify(options.filter) : null;
  useEffect(() => {
    if (!client || !topic) return undefined;
    return client.subscribe(topic, (data, frame) => handler.current(data, frame), {
      filter: filter ? JSON.parse(filter) : undefined,
    });
  }, [client, topic, filter]);
}
