// Test doubles: a manual clock, WebSocket, EventSource, fetch and BroadcastChannel.
// Every callback they fire is asynchronous-free; tests drive them and then `flush()`.

/** Let every pending promise callback run. */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

export class FakeClock {
  constructor() {
    this.t = 1_700_000_000_000;
    this.timers = new Map();
    this.seq = 0;
    this.setTimeout = (fn, ms = 0) => {
      this.seq += 1;
      this.timers.set(this.seq, { at: this.t + Math.max(0, ms), fn });
      return this.seq;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
    this.now = () => this.t;
  }

  /** Move time forward, firing due timers in order (and letting promises settle between). */
  async advance(ms) {
    const end = this.t + ms;
    await flush();
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }

  /** Delays of the timers currently pending, from now. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

export function makeWebSocket() {
  class FakeWebSocket {
    static instances = [];

    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      FakeWebSocket.instances.push(this);
    }

    get params() {
      return new URL(this.url).searchParams;
    }

    // -- what the server does --
    accept(welcome = {}) {
      this.readyState = 1;
      this.onopen?.({});
      this.receive({ type: 'welcome', user: 'alice', connection: 'c1', heartbeat: 30, unread: 0, ...welcome });
    }

    receive(frame) {
      this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }

    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({ code, reason });
    }

    /** Frames the client sent, optionally of one type. */
    frames(type) {
      return type ? this.sent.filter((f) => f.type === type) : this.sent;
    }

    /** Answer the last request of `type` with `reply` (ref copied). */
    reply(type, reply) {
      const request = this.frames(type).at(-1);
      if (!request) throw new Error(`no ${type} request was sent`);
      this.receive({ ...reply, ref: request.ref });
    }

    // -- what the client does --
    send(data) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      this.readyState = 3;
      this.closedWith = { code, reason };
    }
  }
  return FakeWebSocket;
}

export function makeEventSource() {
  class FakeEventSource {
    static instances = [];

    static get last() {
      return FakeEventSource.instances[FakeEventSource.instances.length - 1];
    }

    constructor(url) {
      this.url = url;
      this.listeners = {};
      this.closed = false;
      FakeEventSource.instances.push(this);
    }

    get params() {
      return new URL(this.url).searchParams;
    }

    addEventListener(type, fn) {
      (this.listeners[type] ||= []).push(fn);
    }

    /** The server sends an event named `type` with `frame` as its data. */
    emit(type, frame, id = '') {
      for (const fn of this.listeners[type] || []) fn({ data: JSON.stringify(frame), lastEventId: id });
    }

    /** The connection fails (network error, HTTP 401, ...): a data-less error event. */
    fail() {
      for (const fn of this.listeners.error || []) fn({ type: 'error' });
    }

    close() {
      this.closed = true;
    }
  }
  return FakeEventSource;
}

/** fetch that hands each request to `handler(method, url) -> {status, body}` (or throws). */
export function makeFetch(handler) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const method = init.method || 'GET';
    calls.push({ method, url: new URL(url), headers: init.headers || {} });
    const { status = 200, body = {} } = await handler(method, new URL(url), init);
    return {
      ok: status >= 200 && status < 300,
      status,
      json: async () => body,
    };
  };
  fetch.calls = calls;
  return fetch;
}

export function makeBroadcastChannel() {
  const channels = new Set();
  class FakeBroadcastChannel {
    constructor(name) {
      this.name = name;
      channels.add(this);
    }

    postMessage(data) {
      for (const other of channels) {
        if (other !== this && other.name === this.name) other.onmessage?.({ data: structuredClone(data) });
      }
    }

    close() {
      channels.delete(this);
    }
  }
  return FakeBroadcastChannel;
}

let seq = 0x1000;
/** A notification with an id that sorts after every earlier one. */
export function note(fields = {}) {
  seq += 1;
  return {
    id: (0x18c0000000000000n + BigInt(seq)).toString(16).padStart(16, '0'),
    type: 'test',
    level: 'info',
    title: `n${seq}`,
    body: '',
    data: {},
    url: null,
    actor: null,
    created_at: new Date(1_700_000_000_000).toISOString(),
    read_at: null,
    ...fields,
  };
}
