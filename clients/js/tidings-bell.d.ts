// Type declarations for tidings-bell.js.
import type { Tidings, Notification } from './tidings.js';

export declare function timeAgo(iso: string | number, now?: number, locale?: string): string;
export declare function safeUrl(url: unknown, base?: string): string | null;
export declare function badgeText(count: number): string;
/** `data.progress` or `data.percent` clamped to 0..100, or null: the item shows a progress bar. */
export declare function progressOf(data: unknown): number | null;

/**
 * `<tidings-bell url="..." token="...">` or set `.client`. Attributes: `limit`, `toasts`
 * ("off" | "top"), `toast-duration`, `browser-notifications`, `theme` ("light" | "dark"), `align` ("left").
 * Events: `tidings-open`, `tidings-close`, `tidings-select` (CustomEvent<Notification>, cancelable),
 * `tidings-action` (`{id, action}` once the server took an action click), `tidings-action-error`.
 * Items show their action buttons, Mark unread, Archive and a snooze menu; a numeric
 * `data.progress`/`data.percent` shows a progress bar updated in place.
 */
export declare class TidingsBell extends HTMLElement {
  client: Tidings | null;
  readonly isOpen: boolean;
  readonly limit: number;
  open(options?: { focus?: boolean }): void;
  close(options?: { focus?: boolean }): void;
  toggle(): void;
}
export default TidingsBell;

declare global {
  interface HTMLElementTagNameMap {
    'tidings-bell': TidingsBell;
  }
  interface HTMLElementEventMap {
    'tidings-select': CustomEvent<Notification>;
    'tidings-action': CustomEvent<{ id: string; action: string }>;
    'tidings-action-error': CustomEvent<{ id: string; action: string; error: unknown }>;
  }
}
