// tidings.js: the browser client for a tidings server. One ES module, no dependencies.
//
// The pure parts (backoff, close-code policy, URL building, de-duplication, the inbox
// reducer) are exported on their own so they can be tested without a browser; the
// Tidings class is the thin, stateful shell that wires them to WebSocket, EventSource,
// fetch and timers (all injectable).

import { Room, messagesOf, topicMatches } from './tidings-rooms.js';

export { Room, compareMessageIds, isMessageId, messagesOf, topicMatches } from './tidings-rooms.js';

export const VERSION = '0.1.0';

/** Connection states, as emitted by the `status` event. */
export const Status = Object.freeze({
  CONNECTING: 'connecting',
  OPEN: 'open',
  RECONNECTING: 'reconnecting',
  SSE: 'sse',
  POLLING: 'polling',
  CLOSED: 'closed',
});

/** WebSocket close codes of the tidings protocol (and the one the client uses itself). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  HEARTBEAT_TIMEOUT: 4000, // client side: two heartbeats missed
  UNAUTHENTICATED: 4001,
  FORBIDDEN: 4003,
  RATE_LIMITED: 4008,
  TOO_MANY_CONNECTIONS: 4009,
  SLOW_CONSUMER: 4010,
  INVALID_AFTER: 4400, // the resume point is not a notification id: connect without it
});

export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'polling']);

/** The smallest notification id: "resume after this" means "send me everything". */
export const ZERO_ID = '0000000000000000';

/** Whether `id` can be a resume point: 16 lowercase hex digits, at most 63 bits. */
export function isResumeId(id) {
  return typeof id === 'string' && /^[0-7][0-9a-f]{15}$/.test(id);
}

const STATUS_OF_TRANSPORT = { websocket: Status.OPEN, sse: Status.SSE, polling: Status.POLLING };

/** Frame types a server sends; also the SSE event names. */
export const SERVER_FRAME_TYPES = Object.freeze([
  'welcome', 'notification', 'read', 'read_all', 'deleted', 'unread', 'message',
  'ping', 'pong', 'ack', 'list', 'error', 'resync', 'preferences',
  'batch', 'presence', 'join', 'leave',
  'updated', 'archived', 'snoozed',
]);

/** A failure reported by the server (error frame, HTTP error) or by the client. */
export class TidingsError extends Error {
  constructor(code, message, { status, ref } = {}) {
    super(message || code);
    this.name = 'TidingsError';
    this.code = code;
    if (status !== undefined) this.status = status;
    if (ref !== undefined) this.ref = ref;
  }
}

// -- backoff ---------------------------------------------------------------------------

/**
 * Delay before reconnect attempt number `attempt` (0-based): "full jitter", a uniform
 * random value in [0, min(cap, base * 2^attempt)), so a thousand clients dropped by the
 * same restart do not come back in lockstep.
 */
export function backoffDelay(attempt, { base = 500, cap = 30000, random = Math.random } = {}) {
  const exp = Math.min(Math.max(0, attempt | 0), 30);
  const ceiling = Math.min(cap, base * 2 ** exp);
  return Math.floor(random() * ceiling);
}

/**
 * What to do after the server closed the connection with `code`:
 * `retry` (reconnect at all), `refreshToken` (call getToken first), `minDelay` (ms added
 * before the jittered backoff), `fallback` (whether a failure *before the welcome* may mean
 * this transport cannot get through, so a lower one is worth trying; the tidings close codes
 * come from the server itself, so another transport would fare no better).
 */
export function closePolicy(code) {
  switch (code) {
    case CloseCode.NORMAL:
    case CloseCode.GOING_AWAY:
      // Before a welcome this is what a proxy that will not carry WebSockets looks like.
      return { retry: true, refreshToken: false, minDelay: 250, fallback: true };
    case CloseCode.UNAUTHENTICATED:
      return { retry: true, refreshToken: true, minDelay: 0, fallback: false };
    case CloseCode.FORBIDDEN:
      return { retry: false, refreshToken: false, minDelay: 0, fallback: false };
    case CloseCode.RATE_LIMITED:
      return { retry: true, refreshToken: false, minDelay: 5000, fallback: false };
    case CloseCode.TOO_MANY_CONNECTIONS:
      return { retry: true, refreshToken: false, minDelay: 15000, fallback: false };
    case CloseCode.SLOW_CONSUMER:
    case CloseCode.HEARTBEAT_TIMEOUT:
      return { retry: true, refreshToken: false, minDelay: 0, fallback: false };
    case CloseCode.MESSAGE_TOO_BIG:
      return { retry: true, refreshToken: false, minDelay: 1000, fallback: false };
    case CloseCode.SERVICE_RESTART:
      return { retry: true, refreshToken: false, minDelay: 250, fallback: false };
    case CloseCode.INVALID_AFTER:
      // Retrying with the same `after` would be refused forever: the client drops it.
      return { retry: true, refreshToken: false, minDelay: 0, fallback: false };
    default:
      return { retry: true, refreshToken: false, minDelay: 0, fallback: true };
  }
}

// -- URLs ------------------------------------------------------------------------------

/**
 * The server's HTTP base URL (no trailing slash) from what the user passed:
 * `https://host/prefix`, `wss://host`, a path like `/tidings`, or nothing (this page's origin).
 */
export function normalizeBase(url, origin = globalThis.location?.origin) {
  const raw = url == null || url === '' ? '/' : String(url);
  const parsed = new URL(raw, origin || undefined);
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:';
  else if (parsed.protocol === 'wss:') parsed.protocol = 'https:';
  parsed.search = '';
  parsed.hash = '';
  return parsed.href.replace(/\/+$/, '');
}

/** `base` + `path` with the non-empty `params` as a query string. */
export function buildUrl(base, path, params = {}) {
  const url = new URL(base.replace(/\/+$/, '') + path);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, String(v));
    else url.searchParams.set(key, String(value));
  }
  return url.href;
}

export function wsUrl(base, { token, after } = {}) {
  return buildUrl(base.replace(/^http/, 'ws'), '/ws', { token, after });
}

export function sseUrl(base, { token, after, topics, history } = {}) {
  const named = topics?.length ? topics.join(',') : null;
  return buildUrl(base, '/api/v1/me/stream', { token, after, topics: named, history: named && history > 0 ? history : null });
}

export function apiUrl(base, path, params = {}) {
  return buildUrl(base, '/api/v1' + path, params);
}

/** The claims of a JWT (not verified: only for `exp` and `sub`), or null. */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Seconds-since-epoch expiry of a JWT, or null if it has none or cannot be read. */
export function tokenExpiry(token) {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' ? exp : null;
}

// -- de-duplication --------------------------------------------------------------------

/**
 * Notification ids already delivered. A bounded window of recent ids plus a floor:
 * ids are 16-hex strings that sort in creation order, so anything at or below the highest
 * id evicted from the window is old news. `last` is the resume point (`?after=`).
 */
export class Dedup {
  constructor({ size = 2000, last = null } = {}) {
    this.size = size;
    this.last = last;
    this.floor = null;
    this._seen = new Set();
  }

  has(id) {
    return this._seen.has(id) || (this.floor !== null && id <= this.floor);
  }

  /** Record `id`; true if it is new (deliver it), false if seen before (drop it). */
  accept(id) {
    if (typeof id !== 'string' || this.has(id)) return false;
    this._seen.add(id);
    if (this.last === null || id > this.last) this.last = id;
    if (this._seen.size > this.size) {
      const oldest = this._seen.values().next().value;
      this._seen.delete(oldest);
      if (this.floor === null || oldest > this.floor) this.floor = oldest;
    }
    return true;
  }

  /**
   * A change's place in the server's log (`position` of `updated`, `deleted` and some
   * `notification` frames): resuming after it replays nothing twice.
   */
  advance(position) {
    if (isResumeId(position) && (this.last === null || position > this.last)) this.last = position;
  }
}

// -- snooze ----------------------------------------------------------------------------

/**
 * The usual snooze choices from `now`: `[{id, label, until}]` with `until` a Date —
 * in an hour, this evening at 18:00 (if still ahead), tomorrow at 9:00, next Monday 9:00.
 */
export function snoozeChoices(now = new Date()) {
  const at = (days, hour) => {
    const d = new Date(now.getTime());
    d.setDate(d.getDate() + days);
    d.setHours(hour, 0, 0, 0);
    return d;
  };
  const choices = [{ id: 'hour', label: 'In 1 hour', until: new Date(now.getTime() + 3600e3) }];
  const evening = at(0, 18);
  if (evening.getTime() - now.getTime() > 3600e3) choices.push({ id: 'evening', label: 'This evening', until: evening });
  choices.push({ id: 'tomorrow', label: 'Tomorrow', until: at(1, 9) });
  choices.push({ id: 'week', label: 'Next week', until: at(((8 - now.getDay()) % 7) || 7, 9) });
  return choices;
}

// -- inbox state -----------------------------------------------------------------------

const byIdDesc = (a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** An empty inbox: newest-first `items` and the server's `unread` count. */
export function createInbox() {
  return { items: [], unread: 0, loaded: false };
}

/**
 * Apply one server frame (or the client's own optimistic action, which has the same
 * shape) to an inbox and return the next inbox. Pure and idempotent: applying a frame
 * twice changes nothing the second time, which is what keeps several tabs and an
 * optimistic update plus the server's echo in step.
 *
 * `max` caps how many items are kept in memory.
 */
export function reduceInbox(state, frame, { max = 500, now = () => new Date().toISOString() } = {}) {
  switch (frame?.type) {
    case 'welcome':
      return Number.isInteger(frame.unread) ? { ...state, unread: frame.unread } : state;
    case 'unread':
      return Number.isInteger(frame.count) ? { ...state, unread: Math.max(0, frame.count) } : state;
    case 'notification': {
      const item = frame.notification;
      if (!item || typeof item.id !== 'string') return state;
      const held = state.items.find((n) => n.id === item.id);
      if (held) {
        // Back from a snooze, or changed before this client saw it live: take it as is.
        return frame.woke || frame.position ? replaceItem(state, held, { ...held, ...item }) : state;
      }
      const items = insertSorted(state.items, item).slice(0, max);
      return { ...state, items, unread: state.unread + (item.read_at ? 0 : 1) };
    }
    case 'updated': {
      // From the log (`position`): shared content, merged into the item if held. Without
      // `position`: this user's own change (read again, unarchived), the whole item.
      const item = frame.notification;
      if (!item || typeof item.id !== 'string') return state;
      const held = state.items.find((n) => n.id === item.id);
      if (held) return replaceItem(state, held, { ...held, ...item });
      if (frame.position || item.archived_at || item.snoozed_until) return state;
      const items = insertSorted(state.items, item).slice(0, max);
      return { ...state, items, unread: state.unread + (item.read_at ? 0 : 1) };
    }
    case 'read': {
      const ids = new Set(frame.ids || []);
      let changed = 0;
      const stamp = frame.read_at || now();
      const items = state.items.map((n) => {
        if (!ids.has(n.id) || n.read_at) return n;
        changed += 1;
        return { ...n, read_at: stamp };
      });
      return changed ? { ...state, items, unread: Math.max(0, state.unread - changed) } : state;
    }
    case 'read_all': {
      const through = frame.through || null;
      const stamp = frame.read_at || now();
      const items = state.items.map((n) =>
        n.read_at || (through && n.id > through) ? n : { ...n, read_at: stamp });
      // Anything newer than `through` arrived after the request; it stays unread.
      const unread = through ? items.filter((n) => !n.read_at && n.id > through).length : 0;
      return { ...state, items, unread: Math.min(state.unread, unread) };
    }
    case 'archived':
    case 'snoozed':
    case 'deleted': {
      // Also what archiving and snoozing do to the inbox (they leave it for now).
      const ids = new Set(frame.ids || []);
      const removedUnread = state.items.filter((n) => ids.has(n.id) && !n.read_at).length;
      const items = state.items.filter((n) => !ids.has(n.id));
      if (items.length === state.items.length) return state;
      return { ...state, items, unread: Math.max(0, state.unread - removedUnread) };
    }
    case 'list': {
      // A page from the server is the truth for the ids it names (read state may have
      // changed elsewhere); `replace` drops everything else (after a resync).
      const fresh = new Map((frame.items || []).map((n) => [n.id, n]));
      let items = frame.replace ? [] : state.items.map((n) => fresh.get(n.id) || n);
      const known = new Set(items.map((n) => n.id));
      for (const n of fresh.values()) if (!known.has(n.id)) items.push(n);
      items = items.sort(byIdDesc).slice(0, max);
      let unread = state.unread;
      if (Number.isInteger(frame.unread_count) && !frame.before) {
        // The count was taken when the page was read: notifications newer than its
        // newest item arrived after that and are not in it.
        let top = null;
        for (const id of fresh.keys()) if (top === null || id > top) top = id;
        const newer = items.filter((n) => !n.read_at && !fresh.has(n.id) && (top === null || n.id > top));
        unread = frame.unread_count + newer.length;
      }
      return { ...state, items, unread, loaded: true };
    }
    default:
      return state;
  }
}

function replaceItem(state, held, item) {
  if (Object.keys(item).every((key) => JSON.stringify(item[key]) === JSON.stringify(held[key]))) return state;
  const items = state.items.map((n) => (n === held ? item : n));
  const unread = state.unread + (held.read_at && !item.read_at ? 1 : 0) - (!held.read_at && item.read_at ? 1 : 0);
  return { ...state, items, unread: Math.max(0, unread) };
}

function insertSorted(items, item) {
  const out = items.slice();
  let i = 0;
  while (i < out.length && out[i].id > item.id) i += 1;
  out.splice(i, 0, item);
  return out;
}

// -- topic matching --------------------------------------------------------------------

/**
 * Whether topic message `data` passes a subscription filter `{field: value | [values]}`
 * (every field must match one of its values). The server applies filters on the
 * WebSocket; the client applies them too, so SSE and polling behave the same.
 */
export function matchesFilter(filter, data) {
  if (!filter) return true;
  if (!data || typeof data !== 'object') return false;
  return Object.entries(filter).every(([field, allowed]) => {
    const value = data[field];
    if (value !== null && typeof value === 'object') return false;
    return (Array.isArray(allowed) ? allowed : [allowed]).includes(value);
  });
}

// -- tiny event emitter ----------------------------------------------------------------

class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    const set = this._handlers.get(event);
    // Wrap so the same function can be subscribed twice and unsubscribed independently.
    const entry = (...args) => fn(...args);
    set.add(entry);
    return () => set.delete(entry);
  }

  emit(event, ...args) {
    const set = this._handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A broken listener must not break delivery to the others.
        setTimeout(() => { throw err; });
      }
    }
  }
}

// -- transports ------------------------------------------------------------------------
//
// Each transport is opened with callbacks { frame(frame), close({code, reason}) } and
// returns a handle { kind, send(frame) -> bool, close() }. "Open" means the server's
// welcome arrived; the client decides that, not the transport.

function openWebSocket(WS, url, cb) {
  const ws = new WS(url);
  let done = false;
  ws.onmessage = (event) => {
    if (done) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && typeof frame.type === 'string') cb.frame(frame);
  };
  ws.onerror = () => {}; // always followed by close
  ws.onclose = (event) => {
    if (done) return;
    done = true;
    cb.close({ code: event.code || CloseCode.ABNORMAL, reason: event.reason || '' });
  };
  return {
    kind: 'websocket',
    send(frame) {
      if (done || ws.readyState !== 1) return false;
      ws.send(JSON.stringify(frame));
      return true;
    },
    close(code = CloseCode.NORMAL, reason = '') {
      if (done) return;
      done = true;
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    },
  };
}

function openEventSource(ES, url, cb) {
  const es = new ES(url);
  let done = false;
  const finish = (code) => {
    if (done) return;
    done = true;
    es.close();
    cb.close({ code, reason: '' });
  };
  const onEvent = (type) => (event) => {
    if (done) return;
    // A server event named "error" and the EventSource's own error share a name;
    // only the server's carries data.
    if (type === 'error' && (event.data === undefined || event.data === null)) {
      finish(CloseCode.ABNORMAL);
      return;
    }
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (typeof frame.type !== 'string') frame.type = type;
    cb.frame(frame);
  };
  for (const type of SERVER_FRAME_TYPES) es.addEventListener(type, onEvent(type));
  es.addEventListener('close', (event) => {
    // Some servers end a stream with an explicit close event carrying a close code.
    let code = CloseCode.NORMAL;
    try {
      code = JSON.parse(event.data).code || code;
    } catch { /* keep NORMAL */ }
    finish(code);
  });
  return {
    kind: 'sse',
    send: () => false,
    close() {
      if (done) return;
      done = true;
      es.close();
    },
  };
}

// -- the client ------------------------------------------------------------------------

const DEFAULTS = {
  transports: TRANSPORTS,
  backoff: { base: 500, cap: 30000 },
  connectTimeout: 10000,
  requestTimeout: 10000,
  pollInterval: 15000,
  upgradeInterval: 30000,
  firstUpgradeDelay: 2000,
  pageSize: 20,
  maxItems: 500,
  heartbeatGrace: 0.5,
  tokenRefreshMargin: 30000,
  autoConnect: true,
  broadcast: true,
};

/**
 * A live connection to a tidings server for one end user.
 *
 *     const client = new Tidings({ url: 'https://notify.example.com', getToken });
 *     client.on('notification', (n) => console.log(n.title));
 *     client.on('unread', (count) => badge.textContent = count);
 */
export class Tidings {
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    if (!o.token && typeof o.getToken !== 'function') {
      throw new TypeError('Tidings needs a `token` or a `getToken` function');
    }
    this._o = o;
    this._base = normalizeBase(o.url);
    this._token = o.token || null;
    this._getToken = typeof o.getToken === 'function' ? o.getToken : null;
    this._transports = (o.transports || TRANSPORTS).filter((t) => TRANSPORTS.includes(t));
    if (!this._transports.length) throw new TypeError('no usable transport in `transports`');
    this._env = {
      WebSocket: o.WebSocket ?? globalThis.WebSocket,
      EventSource: o.EventSource ?? globalThis.EventSource,
      fetch: o.fetch ?? globalThis.fetch?.bind(globalThis),
      BroadcastChannel: o.broadcast === false ? null : (o.BroadcastChannel ?? globalThis.BroadcastChannel),
      setTimeout: o.setTimeout ?? globalThis.setTimeout.bind(globalThis),
      clearTimeout: o.clearTimeout ?? globalThis.clearTimeout.bind(globalThis),
      random: o.random ?? Math.random,
      now: o.now ?? (() => Date.now()),
    };
    this._events = new Emitter();
    this._inbox = createInbox();
    this._dedup = new Dedup({ last: isResumeId(o.after) ? o.after : null });
    this._status = Status.CLOSED;
    this._user = null;
    this._gen = 0; // bumps on every (re)connect cycle and on close(); stale callbacks check it
    this._attempt = 0;
    this._everOpened = false;
    this._conn = null; // handle of the open transport
    this._preferred = 0; // index into _transports where the next cycle starts
    this._timers = new Set();
    this._topicsTimer = null;
    this._watchdog = null;
    this._heartbeat = null;
    this._pending = new Map();
    this._refSeq = 0;
    this._topics = new Map();
    this._channel = null;
    this._stopped = false;
    this._lastError = null;
    this._replaceOnWelcome = false;
    this._onOnline = () => {
      if (this._status === Status.RECONNECTING || this._status === Status.POLLING) this.reconnect();
    };
    if (o.autoConnect) Promise.resolve().then(() => this._status === Status.CLOSED && !this._stopped && this.connect());
  }

  // -- public surface ------------------------------------------------------------------

  /** Subscribe to an event; returns a function that unsubscribes. */
  on(event, fn) {
    return this._events.on(event, fn);
  }

  /** Like `on`, but the listener runs once. */
  once(event, fn) {
    const off = this.on(event, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  get status() {
    return this._status;
  }

  get unreadCount() {
    return this._inbox.unread;
  }

  /** Newest-first notifications known to the client (a copy). */
  get notifications() {
    return this._inbox.items.slice();
  }

  get user() {
    return this._user;
  }

  /** Why the client stopped or last failed (a TidingsError), or null. */
  get lastError() {
    return this._lastError;
  }

  /** Whether a first page of the inbox has arrived. */
  get loaded() {
    return this._inbox.loaded;
  }

  /** The transport in use: 'websocket' | 'sse' | 'polling' | null. */
  get transport() {
    return this._conn?.kind ?? null;
  }

  /** The id to resume after: the newest notification id seen. */
  get lastId() {
    return this._dedup.last;
  }

  /** Start (or restart after `close()` or a fatal close code). */
  connect() {
    if (!this._stopped && this._status !== Status.CLOSED) return;
    this._stopped = false;
    globalThis.addEventListener?.('online', this._onOnline);
    this._cycle();
  }

  /** Drop the current connection and connect again now, skipping any backoff wait. */
  reconnect() {
    this._stopped = false;
    this._attempt = 0;
    this._preferred = 0;
    this._dropConnection();
    this._cycle();
  }

  /** Close for good (until `connect()`); pending requests are rejected. */
  close() {
    this._stopped = true;
    this._gen += 1;
    this._dropConnection();
    this._clearTimers();
    this._channel?.close();
    this._channel = null;
    globalThis.removeEventListener?.('online', this._onOnline);
    this._setStatus(Status.CLOSED);
  }

  /** Replace the token (e.g. after the app refreshed it); reconnects if auth had failed. */
  setToken(token) {
    this._token = token;
    if (this._status === Status.CLOSED && this._lastError?.code === 'unauthenticated') this.connect();
  }

  /** Mark notifications read. Optimistic: the badge updates at once. */
  async markRead(ids) {
    const list = [].concat(ids).filter((id) => typeof id === 'string');
    if (!list.length) return;
    this._applyLocal({ type: 'read', ids: list });
    try {
      if (this._canSend()) await this._request({ type: 'mark_read', ids: list });
      else await Promise.all(list.map((id) => this._rest('POST', `/me/notifications/${encodeURIComponent(id)}/read`)));
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /** Mark everything read. */
  async markAllRead() {
    this._applyLocal({ type: 'read_all', through: this._newestKnownId() });
    try {
      if (this._canSend()) await this._request({ type: 'mark_all_read' });
      else await this._rest('POST', '/me/notifications/read-all');
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /**
   * The user's preferences: `{types: {<type>: {enabled}}, categories: {...},
   * do_not_disturb_until}` (REST).
   */
  async preferences() {
    return this._rest('GET', '/me/preferences');
  }

  /**
   * Change preferences: merged into the stored ones (`{replace: true}` replaces them).
   * E.g. `setPreferences({categories: {news: {enabled: false}}})` or
   * `setPreferences({do_not_disturb_until: '2030-01-01T09:00:00Z'})`. Resolves to the
   * preferences now in force; the user's other tabs and devices get a `preferences` event.
   */
  async setPreferences(changes, { replace = false } = {}) {
    const result = await this._rest(replace ? 'PUT' : 'PATCH', '/me/preferences', {}, false, changes);
    // Streams get a `preferences` frame (and refetch then); polling hears of nothing.
    if (this._conn?.kind === 'polling') this._refresh({ replace: true });
    return result;
  }

  /** Mark one notification unread again (REST); the other tabs and devices follow. */
  async markUnread(id) {
    const held = this._inbox.items.find((n) => n.id === id);
    if (held) this._applyLocal({ type: 'updated', notification: { ...held, read_at: null } });
    return this._inboxAction(`/me/notifications/${encodeURIComponent(id)}/unread`);
  }

  /** Move one notification out of the inbox into the archive (REST). */
  async archive(id) {
    this._applyLocal({ type: 'archived', ids: [id] });
    return this._inboxAction(`/me/notifications/${encodeURIComponent(id)}/archive`, { local: false });
  }

  /** Bring an archived notification back into the inbox (REST). */
  async unarchive(id) {
    return this._inboxAction(`/me/notifications/${encodeURIComponent(id)}/unarchive`);
  }

  /** Archive every read notification (REST); resolves to `{ids, unread_count}`. */
  async archiveRead() {
    const read = this._inbox.items.filter((n) => n.read_at).map((n) => n.id);
    if (read.length) this._applyLocal({ type: 'archived', ids: read });
    try {
      const result = await this._rest('POST', '/me/notifications/archive-read');
      this._apply({ type: 'unread', count: result.unread_count });
      return result;
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /**
   * Hide one notification until `until` (a Date, an ISO string, or one of
   * `snoozeChoices()`); it then comes back unread, live. Resolves to the notification.
   */
  async snooze(id, until) {
    const when = until?.until ?? until;
    const iso = when instanceof Date ? when.toISOString() : String(when);
    this._applyLocal({ type: 'snoozed', ids: [id], until: iso });
    try {
      return await this._rest('POST', `/me/notifications/${encodeURIComponent(id)}/snooze`, {}, false, { until: iso });
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /**
   * Click one of a notification's `actions` (its `id`): the server tells the backend
   * (a `notification.action` webhook). Over the WebSocket when open, else over HTTP.
   * An action with a `url` is for the page to open; posting it is still allowed.
   */
  async act(id, action) {
    if (this._canSend()) return this._request({ type: 'action', id, action });
    const path = `/me/notifications/${encodeURIComponent(id)}/actions/${encodeURIComponent(action)}`;
    return this._rest('POST', path);
  }

  /** Delete one notification from the user's inbox (REST). */
  async remove(id) {
    this._applyLocal({ type: 'deleted', ids: [id] });
    try {
      await this._rest('DELETE', `/me/notifications/${encodeURIComponent(id)}`);
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /**
   * A page of the inbox, newest first: `{items, unread_count, next_before}`.
   * Over the WebSocket when open, else over HTTP. The page is merged into `notifications`.
   */
  async list({ limit = this._o.pageSize, before, unread, archived, type, category, level } = {}) {
    let page;
    const filtered = Boolean(archived || type || category || level);
    if (this._canSend() && !unread) {
      const frame = { type: 'list', limit };
      if (before) frame.before = before;
      if (archived) frame.archived = true;
      if (type) frame.types = [].concat(type);
      if (category) frame.categories = [].concat(category);
      if (level) frame.levels = [].concat(level);
      page = await this._request(frame);
    } else {
      page = await this._rest('GET', '/me/notifications', {
        limit, before, unread: unread ? 'true' : undefined, archived: archived ? 'true' : undefined,
        type, category, level,
      });
    }
    const items = Array.isArray(page.items) ? page.items : [];
    const result = { items, unread_count: page.unread_count, next_before: page.next_before ?? null };
    if (filtered) return result; // a view of its own: the inbox is not this page
    this._noteListed(items, { first: !before });
    this._apply({ type: 'list', items, before, unread_count: unread ? undefined : page.unread_count });
    return result;
  }

  /**
   * Listen to a topic's messages (or a glob's, `logs.*`): `fn(data, frame)`, where
   * `frame` has `topic`, `id`, `ts` and, from a client publish, `user`. Options:
   * `filter` (`{field: value | [values]}`, applied by the server), `history` (replay the
   * last N first), `since` (replay after a message id), `presence` (count this tab in the
   * topic's room; `presence`, `join` and `leave` events follow). After a reconnect the
   * subscription resumes after the newest message id seen. Returns an unsubscribe function.
   */
  subscribe(topic, fn, { filter, history = 0, since = null, presence = false } = {}) {
    if (typeof topic !== 'string' || !topic) throw new TypeError('topic must be a non-empty string');
    let entry = this._topics.get(topic);
    if (!entry) {
      entry = new Room(topic, { filter: filter ?? null, history, since, presence });
      this._topics.set(topic, entry);
      this._sendSubscribe(topic, entry);
      this._topicsChanged();
    } else if (filter !== undefined && JSON.stringify(filter) !== JSON.stringify(entry.filter)) {
      entry.filter = filter;
      this._sendSubscribe(topic, entry);
    }
    const wrapped = (data, frame) => fn(data, frame);
    entry.fns.add(wrapped);
    return () => {
      entry.fns.delete(wrapped);
      if (entry.fns.size === 0 && this._topics.get(topic) === entry) {
        this._topics.delete(topic);
        if (this._canSend()) this._conn.send({ type: 'unsubscribe', topic });
        this._topicsChanged();
      }
    };
  }

  /**
   * Publish `data` to a topic as this user (the token's `publish` claim must allow it).
   * Over the WebSocket it is a `publish` frame answered by an ack; otherwise
   * `POST /api/v1/me/topics/{topic}/messages`. Rejects with a TidingsError
   * (`forbidden`, `rate_limited`, `too_large`).
   */
  async publish(topic, data) {
    if (typeof topic !== 'string' || !topic) throw new TypeError('topic must be a non-empty string');
    if (this._canSend()) return this._request({ type: 'publish', topic, data });
    return this._rest('POST', `/me/topics/${encodeURIComponent(topic)}/messages`, {}, false, { data });
  }

  /** Users in a topic's room, as this tab knows them (subscribed with `presence: true`). */
  presence(topic) {
    const room = this._topics.get(topic);
    return room ? [...room.users] : [];
  }

  // -- connection cycle ----------------------------------------------------------------

  /**
   * One connection cycle: try each transport from the preferred one down until one
   * says welcome. If none does, wait (backoff) and start again from the top.
   */
  async _cycle(startAt = this._preferred) {
    const gen = ++this._gen;
    this._clearTimers();
    this._setStatus(this._everOpened ? Status.RECONNECTING : Status.CONNECTING);
    if (this._getToken && this._tokenStale()) {
      if (!(await this._refreshToken(gen))) return;
    }
    let last = { code: CloseCode.ABNORMAL };
    let refreshed = false;
    for (let i = startAt; i < this._transports.length; i += 1) {
      const kind = this._transports[i];
      const result = await this._attemptTransport(kind, gen);
      if (gen !== this._gen) {
        result.handle?.close(CloseCode.NORMAL, 'superseded');
        return;
      }
      if (result.open) {
        this._adopt(result.handle, i);
        return;
      }
      if (result.code === CloseCode.INVALID_AFTER && this._dedup.last !== null) {
        // A resume point the server does not take: start afresh (refetch the list).
        this._forgetResumePoint();
        i -= 1;
        continue;
      }
      if (result.code === CloseCode.UNAUTHENTICATED && this._getToken && !refreshed) {
        // Expired token: get a fresh one and start the cycle over once.
        refreshed = true;
        if (!(await this._refreshToken(gen))) return;
        i = startAt - 1;
        continue;
      }
      last = result;
      // The server answered and refused: another transport would be refused too.
      if (!closePolicy(result.code).fallback) break;
    }
    this._retryLater(last.code);
  }

  _forgetResumePoint() {
    this._dedup.last = null;
    this._replaceOnWelcome = true;
  }

  _tokenStale() {
    if (!this._token) return true;
    const exp = tokenExpiry(this._token);
    return exp !== null && exp * 1000 - this._env.now() < this._o.tokenRefreshMargin;
  }

  /**
   * Open one transport; resolves `{open: true, handle}` on welcome, else `{open: false, code}`.
   * Frames that follow the welcome are buffered on the handle until `_adopt` takes it.
   */
  _attemptTransport(kind, gen) {
    return new Promise((resolve) => {
      let settled = false;
      let timer = null;
      let handle = null;
      const settle = (value) => {
        if (settled) return;
        settled = true;
        if (timer !== null) this._env.clearTimeout(timer);
        resolve(value);
      };
      const handlers = {
        frame: (frame) => {
          if (!settled) {
            if (frame.type === 'welcome') {
              handle.buffer = [frame];
              settle({ open: true, handle });
            } else if (frame.type === 'error' && frame.ref == null) {
              this._lastError = new TidingsError(frame.code || 'error', frame.message);
            }
            return;
          }
          if (handle.buffer) handle.buffer.push(frame);
          else if (handle === this._conn) this._handleFrame(frame, handle);
        },
        close: ({ code, reason }) => {
          if (!settled) settle({ open: false, code, reason });
          else if (handle.buffer) handle.dropped = { code, reason };
          else if (handle === this._conn) this._onDropped(code, reason);
        },
      };
      try {
        handle = this._openTransport(kind, handlers);
      } catch (err) {
        this._lastError = err instanceof TidingsError ? err : new TidingsError('transport', String(err?.message || err));
        handle = null;
      }
      if (!handle) {
        settle({ open: false, code: CloseCode.ABNORMAL });
        return;
      }
      timer = this._env.setTimeout(() => {
        timer = null;
        handle.close(CloseCode.NORMAL, 'connect timeout');
        settle({ open: false, code: CloseCode.ABNORMAL, reason: 'timeout' });
      }, this._o.connectTimeout);
    });
  }

  _openTransport(kind, handlers) {
    const after = this._dedup.last;
    if (kind === 'websocket') {
      if (!this._env.WebSocket) return null;
      return openWebSocket(this._env.WebSocket, wsUrl(this._base, { token: this._token, after }), handlers);
    }
    if (kind === 'sse') {
      if (!this._env.EventSource) return null;
      // SSE names its topics and globs in the URL (with history); filters apply here.
      const topics = [...this._topics.keys()];
      const history = Math.max(0, ...[...this._topics.values()].filter((r) => !r.newest()).map((r) => r.history));
      return openEventSource(this._env.EventSource, sseUrl(this._base, { token: this._token, after, topics, history }), handlers);
    }
    return this._openPolling(handlers);
  }

  /** Polling "transport": a loop of REST requests that looks like a stream to the rest. */
  _openPolling(cb) {
    let done = false;
    let timer = null;
    let welcomed = false;
    const handle = {
      kind: 'polling',
      send: () => false,
      close: () => {
        done = true;
        if (timer !== null) this._env.clearTimeout(timer);
      },
      pollNow: () => {
        if (timer !== null) this._env.clearTimeout(timer);
        timer = null;
        tick();
      },
    };
    const tick = async () => {
      try {
        const frames = await this._pollOnce();
        if (done) return;
        if (!welcomed) {
          welcomed = true;
          cb.frame({ type: 'welcome', user: this._user, heartbeat: null, unread: frames.unread, transport: 'polling' });
        }
        for (const frame of frames.list) {
          if (done) return;
          cb.frame(frame);
        }
        if (!done) timer = this._env.setTimeout(tick, this._o.pollInterval);
      } catch (err) {
        if (done) return;
        done = true;
        this._lastError = err;
        cb.close({ code: err?.status === 401 ? CloseCode.UNAUTHENTICATED : err?.status === 403 ? CloseCode.FORBIDDEN : CloseCode.ABNORMAL });
      }
    };
    Promise.resolve().then(tick);
    return handle;
  }

  /**
   * One poll: the newest page, and older pages back to the resume point so nothing is
   * missed. Returns frames as a stream would have sent them, oldest first.
   */
  async _pollOnce() {
    const limit = Math.min(100, Math.max(this._o.pageSize, 20));
    const last = this._dedup.last;
    const first = await this._rest('GET', '/me/notifications', { limit });
    const pages = [first];
    let page = first;
    for (let n = 0; last && n < 10 && page.next_before && page.items?.length && page.items[page.items.length - 1].id > last; n += 1) {
      page = await this._rest('GET', '/me/notifications', { limit, before: page.next_before });
      pages.push(page);
    }
    const all = pages.flatMap((p) => p.items || []);
    const list = [{ type: 'list', items: first.items || [], unread_count: first.unread_count, polled: true }];
    if (last) {
      const fresh = all.filter((n) => n.id > last).sort((a, b) => (a.id < b.id ? -1 : 1));
      for (const n of fresh) list.push({ type: 'notification', notification: n });
    }
    return { unread: first.unread_count, list };
  }

  _adopt(handle, index) {
    const previous = this._conn;
    this._conn = handle;
    if (previous && previous !== handle) previous.close(CloseCode.NORMAL, 'upgraded');
    this._preferred = index;
    this._everOpened = true;
    this._openedAt = this._env.now();
    this._lastError = null;
    this._setStatus(STATUS_OF_TRANSPORT[handle.kind]);
    const early = handle.buffer || [];
    handle.buffer = null;
    for (const frame of early) {
      if (this._conn !== handle) return;
      this._handleFrame(frame, handle);
    }
    if (handle.dropped && this._conn === handle) {
      this._onDropped(handle.dropped.code, handle.dropped.reason);
      return;
    }
    // The first probe comes soon: a fallback is often a race with a server that was
    // just coming back, not a proxy that blocks WebSocket.
    if (index > 0) this._scheduleUpgrade(Math.min(this._o.firstUpgradeDelay, this._o.upgradeInterval));
  }

  _onDropped(code, reason) {
    const handle = this._conn;
    this._conn = null;
    this._stopWatchdog();
    this._rejectPending(new TidingsError('disconnected', `connection closed (${code})`));
    if (this._stopped) return;
    if (handle) this._emit('disconnect', { code, reason, transport: handle.kind });
    // A connection that lived a while earns a fresh backoff; one dropped straight
    // after welcome (e.g. refused repeatedly) keeps climbing.
    if (this._env.now() - (this._openedAt || 0) > 10000) this._attempt = 0;
    const policy = closePolicy(code);
    if (code === CloseCode.UNAUTHENTICATED) {
      if (!this._getToken) return this._fatal(new TidingsError('unauthenticated', 'token rejected (4001) and no getToken to refresh it'));
      this._gen += 1;
      const gen = this._gen;
      this._setStatus(Status.RECONNECTING);
      this._refreshToken(gen).then((ok) => ok && gen === this._gen && this._cycle(this._preferred));
      return;
    }
    if (!policy.retry) return this._fatal(new TidingsError('forbidden', `server refused the connection (${code})`));
    if (code === CloseCode.INVALID_AFTER) this._forgetResumePoint();
    if (code === CloseCode.SLOW_CONSUMER || code === CloseCode.HEARTBEAT_TIMEOUT || code === CloseCode.INVALID_AFTER) {
      // Resume straight away (tiny jitter): the server is fine, this link was not.
      this._gen += 1;
      this._setStatus(Status.RECONNECTING);
      this._later(() => this._cycle(this._preferred), Math.floor(this._env.random() * 250));
      return;
    }
    this._retryLater(code, { fromDrop: true });
  }

  _retryLater(code, { fromDrop = false } = {}) {
    if (this._stopped) return;
    const policy = closePolicy(code);
    if (!policy.retry) return this._fatal(this._lastError || new TidingsError('forbidden', `server refused the connection (${code})`));
    if (code === CloseCode.UNAUTHENTICATED && !this._getToken) {
      return this._fatal(new TidingsError('unauthenticated', 'token rejected and no getToken to refresh it'));
    }
    const delay = policy.minDelay + backoffDelay(this._attempt, { ...this._o.backoff, random: this._env.random });
    this._attempt += 1;
    // When everything failed the server was probably down, not the WebSocket blocked,
    // so the next cycle starts from the best transport again. A drop of an open
    // connection resumes on the transport that worked.
    if (!fromDrop) this._preferred = 0;
    this._gen += 1;
    this._setStatus(this._everOpened ? Status.RECONNECTING : Status.CONNECTING);
    this._emit('retry', { attempt: this._attempt, delay, code });
    this._later(() => this._cycle(this._preferred), delay);
  }

  _fatal(error) {
    this._lastError = error;
    this._stopped = true;
    this._gen += 1;
    this._dropConnection();
    this._clearTimers();
    this._setStatus(Status.CLOSED);
    this._emit('error', error);
  }

  async _refreshToken(gen) {
    try {
      const token = await this._getToken();
      if (gen !== this._gen) return false;
      if (!token) throw new TidingsError('unauthenticated', 'getToken returned no token');
      this._token = token;
      return true;
    } catch (err) {
      if (gen !== this._gen) return false;
      this._lastError = err;
      this._emit('error', err);
      this._attempt += 1;
      this._retryLater(CloseCode.ABNORMAL, { fromDrop: true });
      return false;
    }
  }

  /** While on SSE or polling, try the better transports now and then. */
  _scheduleUpgrade(delay) {
    const gen = this._gen;
    this._later(async () => {
      if (gen !== this._gen || !this._conn) return;
      const current = this._transports.indexOf(this._conn.kind);
      for (let i = 0; i < current; i += 1) {
        const result = await this._attemptTransport(this._transports[i], gen);
        if (gen !== this._gen || !this._conn) {
          result.handle?.close(CloseCode.NORMAL, 'superseded');
          return;
        }
        if (result.open) {
          this._emit('upgrade', { from: this._conn.kind, to: result.handle.kind });
          this._adopt(result.handle, i);
          return;
        }
      }
      const interval = this._o.upgradeInterval;
      this._scheduleUpgrade(delay < interval ? Math.min(delay * 2, interval) : Math.min(delay * 2, 300000));
    }, delay);
  }

  _dropConnection() {
    this._stopWatchdog();
    const conn = this._conn;
    this._conn = null;
    conn?.close(CloseCode.NORMAL, 'client closed');
    this._rejectPending(new TidingsError('disconnected', 'connection closed by the client'));
  }

  // -- frames ----------------------------------------------------------------------------

  _handleFrame(frame, handle) {
    this._feedWatchdog(handle);
    switch (frame.type) {
      case 'welcome':
        return this._onWelcome(frame, handle);
      case 'notification': {
        const n = frame.notification;
        if (frame.position) this._dedup.advance(frame.position);
        if (!n) return;
        if (frame.woke) this._dedup.accept(n.id); // back from a snooze: seen, yet shown again
        else if (!this._dedup.accept(n.id)) return;
        this._apply(frame);
        // During do-not-disturb the item still arrives and counts, but shows no toast.
        const meta = { silent: frame.silent === true };
        this._emit('notification', n, meta);
        this._broadcast({ type: 'notification', notification: n, silent: meta.silent, woke: frame.woke });
        return;
      }
      case 'updated':
      case 'archived':
      case 'snoozed':
        if (frame.position) this._dedup.advance(frame.position);
        this._applyRemote(frame);
        return;
      case 'preferences':
        // What is shown and counted changed: take the list again, as the server filters it.
        this._emit('preferences', frame.preferences);
        this._refresh({ replace: true });
        return;
      case 'unread':
      case 'read':
      case 'read_all':
      case 'deleted': {
        if (frame.position) this._dedup.advance(frame.position);
        if (frame.retracted && (frame.ids || []).some((id) => !this._inbox.items.some((n) => n.id === id))) {
          // Taken back by the backend; one we do not hold may still have been counted.
          Promise.resolve().then(() => this._refresh());
        }
        this._apply(frame);
        if (frame.type === 'read') this._emit('read', frame.ids || []);
        else if (frame.type === 'read_all') this._emit('read_all', frame.through ?? null);
        else if (frame.type === 'deleted') this._emit('deleted', frame.ids || []);
        return;
      }
      case 'message':
      case 'batch':
        for (const message of messagesOf(frame)) this._onMessage(message);
        // A fast topic went over this connection's budget: newest kept, older skipped.
        if (frame.type === 'batch') this._emit('batch', { messages: messagesOf(frame).length, skipped: frame.skipped || 0 });
        return;
      case 'presence':
      case 'join':
      case 'leave': {
        const room = this._topics.get(frame.topic);
        if (room && room.applyPresence(frame)) {
          if (frame.type !== 'presence') this._emit(frame.type, { topic: frame.topic, user: frame.user });
          this._emit('presence', { topic: frame.topic, users: [...room.users] });
        }
        return;
      }
      case 'ping':
        handle.send({ type: 'pong' });
        return;
      case 'resync':
        this._emit('resync', frame);
        this._refresh({ replace: true });
        return;
      case 'list':
        if (frame.polled) {
          this._noteListed(frame.items || []);
          this._apply(frame);
          return;
        }
      // falls through: a list with a ref is a reply
      default:
        if (frame.ref !== undefined && frame.ref !== null && this._pending.has(frame.ref)) {
          const pending = this._pending.get(frame.ref);
          this._pending.delete(frame.ref);
          this._env.clearTimeout(pending.timer);
          if (frame.type === 'error') pending.reject(new TidingsError(frame.code || 'error', frame.message, { ref: frame.ref }));
          else pending.resolve(frame);
        } else if (frame.type === 'error') {
          this._emit('error', new TidingsError(frame.code || 'error', frame.message));
        }
    }
  }

  _onWelcome(frame, handle) {
    // Polling has no server welcome; the token's subject names the user for the tab channel.
    const user = frame.user || tokenClaims(this._token)?.sub;
    if (typeof user === 'string' && user) this._user = user;
    this._apply({ type: 'welcome', unread: frame.unread });
    this._openChannel();
    if (handle.kind !== 'polling') {
      this._startWatchdog(handle, frame.heartbeat);
      for (const [topic, entry] of this._topics) this._sendSubscribe(topic, entry, handle);
      // Read state may have changed while away; a missed notification comes by replay
      // (without a resume point nothing is replayed: the list replaces what we had).
      const replace = this._replaceOnWelcome;
      this._replaceOnWelcome = false;
      Promise.resolve().then(() => this._refresh({ replace }));
    }
    this._emit('welcome', frame);
  }

  _onMessage(frame) {
    this._emit('message', frame);
    for (const [pattern, entry] of this._topics) {
      if (!topicMatches(pattern, frame.topic) || !matchesFilter(entry.filter, frame.data)) continue;
      if (!entry.accept(frame)) continue; // replayed after a reconnect and already seen
      for (const fn of [...entry.fns]) {
        try {
          fn(frame.data, frame);
        } catch (err) {
          setTimeout(() => { throw err; });
        }
      }
    }
  }

  /**
   * List items are in the inbox but were never "delivered" as notification events.
   * The first page seeds the resume point so a reconnect only asks for what is newer;
   * an empty inbox resumes from the very start (everything that arrives later is new).
   */
  _noteListed(items, { first = true } = {}) {
    if (this._dedup.last !== null) {
      for (const n of items) if (n.id <= this._dedup.last) this._dedup.accept(n.id);
      return;
    }
    if (!first) return;
    if (!items.length) {
      this._dedup.last = ZERO_ID;
      return;
    }
    for (const n of [...items].sort(byIdDesc).reverse()) this._dedup.accept(n.id);
  }

  async _refresh({ replace = false } = {}) {
    try {
      const page = this._canSend()
        ? await this._request({ type: 'list', limit: this._o.pageSize })
        : await this._rest('GET', '/me/notifications', { limit: this._o.pageSize });
      const items = Array.isArray(page.items) ? page.items : [];
      if (replace) for (const n of items) this._dedup.accept(n.id);
      this._noteListed(items);
      this._apply({ type: 'list', items, unread_count: page.unread_count, replace });
      this._emit('refresh', { items, replace });
    } catch (err) {
      if (err?.code !== 'disconnected') this._emit('error', err);
    }
  }

  // -- state -----------------------------------------------------------------------------

  _apply(frame) {
    const before = this._inbox;
    const next = reduceInbox(before, frame, { max: this._o.maxItems });
    if (next === before) return;
    this._inbox = next;
    if (next.unread !== before.unread) this._emit('unread', next.unread);
    this._emit('change', { items: next.items, unread: next.unread });
  }

  /** A change heard from the server (or another tab): apply and tell listeners. */
  _applyRemote(frame) {
    this._apply(frame);
    if (frame.type === 'updated') this._emit('updated', frame.notification, { shared: Boolean(frame.position) });
    else if (frame.type === 'archived') this._emit('archived', frame.ids || []);
    else if (frame.type === 'snoozed') this._emit('snoozed', frame.ids || [], frame.until ?? null);
  }

  /** A REST inbox action whose answer is the notification as it now is. */
  async _inboxAction(path, { local = true } = {}) {
    try {
      const item = await this._rest('POST', path);
      if (local && item && typeof item.id === 'string') this._applyLocal({ type: 'updated', notification: item });
      return item;
    } catch (err) {
      this._refresh();
      throw err;
    }
  }

  /** An action taken here: apply now, tell the other tabs. */
  _applyLocal(frame) {
    this._apply(frame);
    this._broadcast(frame);
    if (frame.type === 'read') this._emit('read', frame.ids);
    else if (frame.type === 'read_all') this._emit('read_all', frame.through ?? null);
    else if (frame.type === 'deleted') this._emit('deleted', frame.ids);
    else if (frame.type === 'updated') this._emit('updated', frame.notification, { shared: false });
    else if (frame.type === 'archived') this._emit('archived', frame.ids);
    else if (frame.type === 'snoozed') this._emit('snoozed', frame.ids, frame.until ?? null);
  }

  _newestKnownId() {
    const top = this._inbox.items[0]?.id ?? null;
    const last = this._dedup.last;
    if (top === null) return last;
    if (last === null) return top;
    return top > last ? top : last;
  }

  // -- tabs ------------------------------------------------------------------------------

  _openChannel() {
    const BC = this._env.BroadcastChannel;
    if (!BC || !this._user || this._channel?.name === `tidings:${this._user}`) return;
    this._channel?.close();
    try {
      this._channel = new BC(`tidings:${this._user}`);
    } catch {
      this._channel = null;
      return;
    }
    this._channel.onmessage = (event) => this._onTabMessage(event.data);
  }

  _broadcast(frame) {
    try {
      this._channel?.postMessage(frame);
    } catch { /* a closed channel is fine */ }
  }

  _onTabMessage(frame) {
    if (!frame || typeof frame.type !== 'string') return;
    if (['updated', 'archived', 'snoozed'].includes(frame.type)) {
      this._applyRemote(frame);
      return;
    }
    if (frame.type === 'notification') {
      // Another tab heard it first (e.g. this one is polling): take it, deduplicated.
      if (this._conn?.kind === 'polling' && frame.notification && (this._dedup.accept(frame.notification.id) || frame.woke)) {
        this._apply(frame);
        this._emit('notification', frame.notification, { silent: frame.silent === true });
      }
      return;
    }
    if (['read', 'read_all', 'deleted'].includes(frame.type)) {
      this._apply(frame);
      if (frame.type === 'read') this._emit('read', frame.ids || []);
      else if (frame.type === 'read_all') this._emit('read_all', frame.through ?? null);
      else this._emit('deleted', frame.ids || []);
    }
  }

  // -- requests --------------------------------------------------------------------------

  _canSend() {
    return this._conn?.kind === 'websocket' && this._status === Status.OPEN;
  }

  _request(frame) {
    return new Promise((resolve, reject) => {
      this._refSeq += 1;
      const ref = `r${this._refSeq}`;
      const timer = this._env.setTimeout(() => {
        this._pending.delete(ref);
        reject(new TidingsError('timeout', `no reply to ${frame.type} within ${this._o.requestTimeout} ms`, { ref }));
      }, this._o.requestTimeout);
      this._pending.set(ref, { resolve, reject, timer });
      if (!this._conn?.send({ ...frame, ref })) {
        this._env.clearTimeout(timer);
        this._pending.delete(ref);
        reject(new TidingsError('disconnected', 'not connected'));
      }
    });
  }

  _rejectPending(error) {
    for (const [ref, pending] of this._pending) {
      this._env.clearTimeout(pending.timer);
      pending.reject(error);
      this._pending.delete(ref);
    }
  }

  async _rest(method, path, params = {}, retried = false, json = undefined) {
    if (!this._env.fetch) throw new TidingsError('transport', 'fetch is not available');
    if (!this._token && this._getToken) this._token = await this._getToken();
    const headers = { Authorization: `Bearer ${this._token}`, Accept: 'application/json' };
    const init = { method, headers, credentials: 'omit' };
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    }
    const response = await this._env.fetch(apiUrl(this._base, path, params), init);
    if (response.status === 401 && this._getToken && !retried) {
      this._token = await this._getToken();
      return this._rest(method, path, params, true, json);
    }
    let body = null;
    if (response.status !== 204) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    if (!response.ok) {
      const e = body?.error || {};
      throw new TidingsError(e.code || `http_${response.status}`, e.message || `HTTP ${response.status}`, { status: response.status });
    }
    return body ?? {};
  }

  _sendSubscribe(topic, entry, handle = this._canSend() ? this._conn : null) {
    if (!handle || handle.kind !== 'websocket' || handle !== this._conn) return;
    const frame = entry.subscribeFrame();
    this._request(frame).catch((err) => {
      if (err?.code === 'unknown_since' || err?.code === 'invalid_since') {
        // The topic's history no longer knows that id: start afresh from its history.
        entry.seen.clear();
        entry.since = null;
        this._sendSubscribe(topic, entry, handle);
        return;
      }
      if (err?.code === 'disconnected' || err?.code === 'timeout') return; // resent on reconnect
      // Refused (not allowed by the token's topics, bad filter): stop asking for it.
      if (this._topics.get(topic) === entry) this._topics.delete(topic);
      err.topic = topic;
      this._emit('error', err);
    });
  }

  /** An SSE stream names its topics in the URL: reopen it when they change. */
  _topicsChanged() {
    if (this._conn?.kind !== 'sse' || this._topicsTimer) return;
    this._topicsTimer = this._later(() => {
      this._topicsTimer = null;
      if (this._conn?.kind === 'sse') {
        this._dropConnection();
        this._cycle(this._preferred);
      }
    }, 50);
  }


  // -- heartbeat watchdog ----------------------------------------------------------------

  _startWatchdog(handle, heartbeat) {
    this._stopWatchdog();
    if (!(heartbeat > 0) || handle.kind !== 'websocket') return;
    // Two missed heartbeats (plus grace) of silence means the link is dead even if the
    // socket has not noticed (sleeping laptop, half-open TCP).
    this._heartbeat = { handle, ms: heartbeat * 1000 * (2 + this._o.heartbeatGrace) };
    this._feedWatchdog(handle);
  }

  _feedWatchdog(handle) {
    if (!this._heartbeat || this._heartbeat.handle !== handle) return;
    if (this._watchdog !== null) this._env.clearTimeout(this._watchdog);
    this._watchdog = this._env.setTimeout(() => {
      this._watchdog = null;
      if (this._conn !== handle) return;
      handle.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      this._onDropped(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
    }, this._heartbeat.ms);
  }

  _stopWatchdog() {
    if (this._watchdog !== null) this._env.clearTimeout(this._watchdog);
    this._watchdog = null;
    this._heartbeat = null;
  }

  // -- plumbing --------------------------------------------------------------------------

  _later(fn, delay) {
    const id = this._env.setTimeout(() => {
      this._timers.delete(id);
      fn();
    }, delay);
    this._timers.add(id);
    return id;
  }

  _clearTimers() {
    for (const id of this._timers) this._env.clearTimeout(id);
    this._timers.clear();
    this._topicsTimer = null;
  }

  _setStatus(status) {
    if (status === this._status) return;
    this._status = status;
    this._emit('status', status);
  }

  _emit(event, ...args) {
    this._events.emit(event, ...args);
  }
}

export default Tidings;
