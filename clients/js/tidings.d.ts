// Type declarations for tidings.js.

export type Status = 'connecting' | 'open' | 'reconnecting' | 'sse' | 'polling' | 'closed';
export type Transport = 'websocket' | 'sse' | 'polling';
export type Level = 'info' | 'success' | 'warning' | 'error';

export declare const VERSION: string;
export declare const Status: Readonly<{
  CONNECTING: 'connecting'; OPEN: 'open'; RECONNECTING: 'reconnecting';
  SSE: 'sse'; POLLING: 'polling'; CLOSED: 'closed';
}>;
export declare const CloseCode: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; ABNORMAL: 1006; MESSAGE_TOO_BIG: 1009; SERVICE_RESTART: 1012;
  HEARTBEAT_TIMEOUT: 4000; UNAUTHENTICATED: 4001; FORBIDDEN: 4003; RATE_LIMITED: 4008;
  TOO_MANY_CONNECTIONS: 4009; SLOW_CONSUMER: 4010; INVALID_AFTER: 4400;
}>;
export declare const TRANSPORTS: readonly Transport[];
/** The smallest notification id ("resume after this" = "send everything"). */
export declare const ZERO_ID: '0000000000000000';
export declare const SERVER_FRAME_TYPES: readonly string[];

export interface Notification {
  id: string;
  type: string;
  level: Level | string;
  title: string;
  body: string;
  data: Record<string, unknown>;
  url: string | null;
  /** From the event type's template, or as given on create; null when none. */
  category?: string | null;
  /** Buttons: `client.act(id, action.id)`, or open `url` when it has one. */
  actions?: Action[] | null;
  actor: string | null;
  created_at: string;
  expires_at?: string | null;
  read_at: string | null;
  /** When the backend last changed it (PATCH, or a create with its `key`). */
  updated_at?: string;
  /** For this user: archived (out of the inbox, in `list({archived: true})`). */
  archived_at?: string;
  /** For this user: hidden until then. */
  snoozed_until?: string;
}

export interface Action {
  id: string;
  label: string;
  url?: string | null;
}

export interface SnoozeChoice {
  id: 'hour' | 'evening' | 'tomorrow' | 'week';
  label: string;
  until: Date;
}

export interface Switch {
  enabled: boolean;
}

export interface Preferences {
  types: Record<string, Switch>;
  categories: Record<string, Switch>;
  /** ISO 8601; until then frames are silent (no toast, no desktop notification). */
  do_not_disturb_until: string | null;
}

export interface Page {
  items: Notification[];
  unread_count: number;
  next_before: string | null;
}

export interface TopicMessageFrame<T = unknown> {
  type: 'message';
  /** The concrete topic (also under a glob subscription). */
  topic: string;
  /** `<unix ms>-<sequence>`, increasing along the topic's history. */
  id: string;
  /** Unix milliseconds. */
  ts: number;
  /** The publishing end user, for client publishes. */
  user?: string;
  data: T;
}

export type TopicFilter = Record<string, string | number | boolean | null | Array<string | number | boolean | null>>;

export interface SubscribeOptions {
  filter?: TopicFilter;
  /** Replay the last N messages first (at most the server's TIDINGS_TOPIC_HISTORY). */
  history?: number;
  /** Replay every retained message after this message id first. */
  since?: string | null;
  /** Count this tab in the topic's room; `presence`, `join`, `leave` events follow. */
  presence?: boolean;
}

export interface WelcomeFrame {
  type: 'welcome';
  user: string;
  connection?: string;
  heartbeat: number | null;
  unread: number;
}

export interface TidingsOptions {
  /** Server base URL: `https://host[/prefix]`, `wss://host`, a path, or omitted for this origin. */
  url?: string;
  /** A JWT for the end user. Give this or `getToken`. */
  token?: string;
  /** Called for the first token and whenever the server says it expired (close code 4001). */
  getToken?: () => string | Promise<string>;
  /** Transports to try, best first. Default `['websocket', 'sse', 'polling']`. */
  transports?: Transport[];
  /** Full-jitter exponential backoff in ms. Default `{base: 500, cap: 30000}`. */
  backoff?: { base?: number; cap?: number };
  /** ms to wait for the server's welcome before trying the next transport. Default 10000. */
  connectTimeout?: number;
  /** ms to wait for a reply to a request (list, mark_read). Default 10000. */
  requestTimeout?: number;
  /** ms between polls in polling mode. Default 15000. */
  pollInterval?: number;
  /** ms before trying a better transport while on SSE or polling (doubles up to 5 min). Default 30000. */
  upgradeInterval?: number;
  /** Milliseconds before the first attempt to climb back from SSE or polling (default 2000). */
  firstUpgradeDelay?: number;
  /** Items per page for the first page and refreshes. Default 20. */
  pageSize?: number;
  /** Most notifications kept in memory. Default 500. */
  maxItems?: number;
  /** With getToken: fetch a new token before connecting when this many ms or fewer remain. Default 30000. */
  tokenRefreshMargin?: number;
  /** Resume after this notification id on the first connect. */
  after?: string;
  /** Connect from the constructor. Default true. */
  autoConnect?: boolean;
  /** Share read state between tabs with BroadcastChannel. Default true. */
  broadcast?: boolean;
  // Injectable environment (tests, non-browser runtimes).
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  fetch?: typeof fetch;
  BroadcastChannel?: typeof BroadcastChannel;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
  random?: () => number;
  now?: () => number;
}

export interface TidingsEvents {
  /** `silent` during do-not-disturb: count it, but show no toast. */
  notification: (notification: Notification, meta: { silent: boolean }) => void;
  preferences: (preferences: Preferences) => void;
  unread: (count: number) => void;
  read: (ids: string[]) => void;
  read_all: (through: string | null) => void;
  deleted: (ids: string[]) => void;
  /** Changed in place: `shared` when the backend changed it for everyone (content only). */
  updated: (notification: Partial<Notification> & { id: string }, meta: { shared: boolean }) => void;
  archived: (ids: string[]) => void;
  /** Hidden until `until`; it comes back as a `notification` then. */
  snoozed: (ids: string[], until: string | null) => void;
  status: (status: Status) => void;
  message: (frame: TopicMessageFrame) => void;
  presence: (room: { topic: string; users: string[] }) => void;
  /** A coalesced batch arrived (the server's per-connection topic budget): its size and what it skipped. */
  batch: (info: { messages: number; skipped: number }) => void;
  join: (change: { topic: string; user: string }) => void;
  leave: (change: { topic: string; user: string }) => void;
  change: (state: { items: Notification[]; unread: number }) => void;
  welcome: (frame: WelcomeFrame) => void;
  resync: (frame: { type: 'resync'; reason?: string }) => void;
  refresh: (info: { items: Notification[]; replace: boolean }) => void;
  retry: (info: { attempt: number; delay: number; code: number }) => void;
  disconnect: (info: { code: number; reason: string; transport: Transport }) => void;
  upgrade: (info: { from: Transport; to: Transport }) => void;
  error: (error: TidingsError) => void;
}

export declare class TidingsError extends Error {
  code: string;
  status?: number;
  ref?: unknown;
  constructor(code: string, message?: string, extra?: { status?: number; ref?: unknown });
}

export declare class Tidings {
  constructor(options: TidingsOptions);
  on<E extends keyof TidingsEvents>(event: E, fn: TidingsEvents[E]): () => void;
  once<E extends keyof TidingsEvents>(event: E, fn: TidingsEvents[E]): () => void;
  readonly status: Status;
  readonly unreadCount: number;
  /** Newest first. */
  readonly notifications: Notification[];
  readonly user: string | null;
  readonly transport: Transport | null;
  readonly lastId: string | null;
  readonly loaded: boolean;
  /** Why the client stopped or last failed, or null. */
  readonly lastError: TidingsError | Error | null;
  connect(): void;
  reconnect(): void;
  close(): void;
  setToken(token: string): void;
  markRead(ids: string | string[]): Promise<void>;
  markAllRead(): Promise<void>;
  remove(id: string): Promise<void>;
  /** Unread again, even after "mark all read" (REST). Resolves to the notification. */
  markUnread(id: string): Promise<Notification>;
  archive(id: string): Promise<Notification>;
  unarchive(id: string): Promise<Notification>;
  archiveRead(): Promise<{ ids: string[]; unread_count: number }>;
  /** Hide until `until` (future, within the retention age); back unread then, live. */
  snooze(id: string, until: Date | string | SnoozeChoice): Promise<Notification>;
  /** Click an action button: the backend gets a `notification.action` webhook. */
  act(id: string, action: string): Promise<unknown>;
  /** The user's preferences (REST). */
  preferences(): Promise<Preferences>;
  /** Merge changes into them (`replace: true`: replace them); resolves to those in force. */
  setPreferences(changes: Partial<Preferences>, options?: { replace?: boolean }): Promise<Preferences>;
  /** A page; `archived`, `type`, `category`, `level` give a filtered view (not merged into `notifications`). */
  list(options?: {
    limit?: number; before?: string; unread?: boolean; archived?: boolean;
    type?: string | string[]; category?: string | string[]; level?: Level | Level[];
  }): Promise<Page>;
  subscribe<T = unknown>(
    topic: string,
    fn: (data: T, frame: TopicMessageFrame<T>) => void,
    options?: SubscribeOptions,
  ): () => void;
  /** Publish as this user (JWT claim `publish`); WebSocket frame or REST. */
  publish(topic: string, data: unknown): Promise<unknown>;
  /** Users in a topic's room as this tab knows them (subscribed with `presence: true`). */
  presence(topic: string): string[];
}
export default Tidings;

// Pure helpers, exported for tests and for people building their own UI.
export declare function backoffDelay(attempt: number, options?: { base?: number; cap?: number; random?: () => number }): number;
export declare function closePolicy(code: number): { retry: boolean; refreshToken: boolean; minDelay: number; fallback: boolean };
export declare function isResumeId(id: unknown): boolean;
export declare function normalizeBase(url?: string, origin?: string): string;
export declare function buildUrl(base: string, path: string, params?: Record<string, unknown>): string;
export declare function wsUrl(base: string, params?: { token?: string | null; after?: string | null }): string;
export declare function sseUrl(base: string, params?: { token?: string | null; after?: string | null; topics?: string[]; history?: number }): string;
export declare function compareMessageIds(a: string, b: string): number;
export declare function isMessageId(id: unknown): boolean;
export declare function messagesOf(frame: { type: string; [key: string]: unknown }): TopicMessageFrame[];
export declare function apiUrl(base: string, path: string, params?: Record<string, unknown>): string;
export declare function tokenExpiry(token: string): number | null;
export declare function tokenClaims(token: string): Record<string, unknown> | null;
export declare function topicMatches(pattern: string, topic: string): boolean;
export declare function matchesFilter(filter: Record<string, unknown> | null | undefined, data: unknown): boolean;

export declare class Dedup {
  constructor(options?: { size?: number; last?: string | null });
  size: number;
  /** Newest id accepted: the resume point. */
  last: string | null;
  floor: string | null;
  has(id: string): boolean;
  accept(id: string): boolean;
  /** Move the resume point to a change's log position. */
  advance(position: string): void;
}
export declare function snoozeChoices(now?: Date): SnoozeChoice[];

export interface Inbox {
  items: Notification[];
  unread: number;
  loaded: boolean;
}
export declare function createInbox(): Inbox;
export declare function reduceInbox(state: Inbox, frame: { type: string; [key: string]: unknown }, options?: { max?: number; now?: () => string }): Inbox;
