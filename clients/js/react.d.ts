// Type declarations for react.js (React bindings for tidings.js).
import type { Notification, Status, Tidings, TidingsError, TidingsOptions, TopicMessageFrame } from './tidings.js';

export interface TidingsState {
  status: Status;
  /** Newest first. */
  notifications: readonly Notification[];
  unreadCount: number;
  loaded: boolean;
  user: string | null;
  error: TidingsError | Error | null;
}

export interface UseTidings extends TidingsState {
  /** The client (null until mounted, or when idle). */
  client: Tidings | null;
  markRead(ids: string | string[]): Promise<void> | undefined;
  markAllRead(): Promise<void> | undefined;
  remove(id: string): Promise<void> | undefined;
}

export type UseTidingsOptions = (TidingsOptions & { client?: undefined }) | { client: Tidings };

export declare function useTidings(options?: UseTidingsOptions): UseTidings;

export declare function useTopic<T = unknown>(
  client: Tidings | null,
  topic: string | null,
  onMessage: (data: T, frame: TopicMessageFrame<T>) => void,
  options?: { filter?: Record<string, unknown> },
): void;

export declare function clientStore(client: Tidings): {
  getSnapshot(): TidingsState;
  subscribe(listener: () => void): () => void;
  close(): void;
};
