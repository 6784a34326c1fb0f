// Type declarations for tidings-bell.js.
import type { Tidings, Notification } from './tidings.js';

export declare function timeAgo(iso: string | number, now?: number, locale?: string): string;
export declare function safeUrl(url: unknown, base?: string): string | null;
export declare function badgeText(count: number): string;

/**
 * `<tidings-bell url="..." token="...">` or set `.client`. Attributes: `limit`, `toasts`
 * ("off" | "top"), `toast-duration`, `browser-notifications`, `theme` ("light" | "dark"), `align` ("left").
 * Events: `tidings-open`, `tidings-close`, `tidings-select` (CustomEvent<Notification>, cancelable).
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
  }
}
