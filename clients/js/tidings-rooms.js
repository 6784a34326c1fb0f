// tidings-rooms.js: topics as rooms for tidings.js, without I/O.
//
// A `Room` is one subscription (a topic name or a glob): its listeners, its options
// (filter, history, presence), the newest message id seen per concrete topic (so a
// resubscribe after a reconnect asks for `since` that id and nothing is lost or
// repeated) and, with presence, who is there. The Tidings class owns the rooms and
// the transports; everything here is plain data in, plain data out.

/** Whether `id` is a topic message id (`<ms>-<seq>`). */
export function isMessageId(id) {
  return typeof id === 'string' && /^\d{1,20}-\d{1,20}$/.test(id);
}

/** Compare two message ids: negative, zero or positive. */
export function compareMessageIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

/** Whether a glob (`*`, `?`, `[set]`) or a plain name covers `topic`. */
export function topicMatches(pattern, topic) {
  if (pattern === topic) return true;
  if (!/[*?[]/.test(pattern)) return false;
  let re = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) return false;
      re += `[${pattern.slice(i + 1, end).replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\]\\-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(topic);
}

export class Room {
  constructor(name, { filter = null, history = 0, since = null, presence = false } = {}) {
    this.name = name;
    this.filter = filter;
    this.history = history;
    this.since = isMessageId(since) ? since : null;
    this.presence = presence;
    this.fns = new Set();
    this.seen = new Map(); // concrete topic -> newest id delivered
    this.users = new Set();
  }

  /** The subscribe frame: on reconnect, resume after the newest id seen. */
  subscribeFrame() {
    const frame = { type: 'subscribe', topic: this.name, batch: true }; // we unpack batches
    if (this.filter) frame.filter = this.filter;
    const since = this.newest();
    if (since) frame.since = since;
    else if (this.history > 0) frame.history = this.history;
    if (this.presence) frame.presence = true;
    return frame;
  }

  /** The newest id delivered on any of the room's topics (or the `since` given). */
  newest() {
    let best = this.since;
    for (const id of this.seen.values()) if (!best || compareMessageIds(id, best) > 0) best = id;
    return best;
  }

  /** Whether a message frame is new for this room (and note it); false for a repeat. */
  accept(frame) {
    if (!isMessageId(frame.id)) return true;
    const last = this.seen.get(frame.topic);
    if (last && compareMessageIds(frame.id, last) <= 0) return false;
    this.seen.set(frame.topic, frame.id);
    return true;
  }

  /** Apply a presence, join or leave frame; whether the set of users changed. */
  applyPresence(frame) {
    const before = this.users.size;
    if (frame.type === 'presence') {
      this.users = new Set(frame.users || []);
      return true;
    }
    if (frame.type === 'join') this.users.add(frame.user);
    else if (frame.type === 'leave') this.users.delete(frame.user);
    return this.users.size !== before;
  }
}

/** The message frames of a frame: itself, or the messages of a coalesced `batch`. */
export function messagesOf(frame) {
  if (frame.type === 'batch') return Array.isArray(frame.messages) ? frame.messages : [];
  return frame.type === 'message' ? [frame] : [];
}
