// <tidings-bell>: a notification bell with unread badge, dropdown, toasts and a
// connection dot. No framework, no dependencies; style it with --tidings-* properties.
//
//   <script type="module" src="/static/tidings-bell.js"></script>
//   <tidings-bell url="https://notify.example.com" token="eyJ..."></tidings-bell>
//
// or give it a client you made: document.querySelector('tidings-bell').client = client;

import { Tidings, snoozeChoices } from './tidings.js';

const LEVELS = new Set(['info', 'success', 'warning', 'error']);

const STATUS_LABEL = {
  connecting: 'Connecting…',
  open: 'Live',
  sse: 'Live (event stream)',
  polling: 'Polling',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
};

/** "just now", "5 minutes ago", "yesterday", from an ISO date. */
export function timeAgo(iso, now = Date.now(), locale = undefined) {
  const then = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(then)) return '';
  const seconds = Math.round((then - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  const fmt = new Intl.RelativeTimeFormat(locale, { numeric: 'auto', style: 'long' });
  const steps = [[60, 'second', 1], [3600, 'minute', 60], [86400, 'hour', 3600], [604800, 'day', 86400],
    [2629800, 'week', 604800], [31557600, 'month', 2629800], [Infinity, 'year', 31557600]];
  for (const [limit, unit, size] of steps) {
    if (abs < limit) return fmt.format(Math.round(seconds / size), unit);
  }
  return '';
}

/** Only http(s) and relative links are followed; anything else (javascript:) is dropped. */
export function safeUrl(url, base = globalThis.location?.href) {
  if (typeof url !== 'string' || !url.trim()) return null;
  try {
    const parsed = new URL(url, base);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/**
 * The progress an item reports in `data.progress` or `data.percent` (0–100), or null:
 * such an item shows a progress bar that moves as the backend updates it in place.
 */
export function progressOf(data) {
  const value = data?.progress ?? data?.percent;
  return typeof value === 'number' && Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : null;
}

/** Badge text: "", "1" … "99", "99+". */
export function badgeText(count) {
  if (!(count > 0)) return '';
  return count > 99 ? '99+' : String(count);
}

const BELL_ICON = '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-1.7 1.7A1 1 0 0 0 4 19.4h16a1 1 0 0 0 .7-1.7Z"/></svg>';
const CHECK_ICON = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false"><path fill="currentColor" d="M9.5 16.2 5.3 12l-1.4 1.4 5.6 5.6 11-11-1.4-1.4z"/></svg>';
const CLOSE_ICON = '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true" focusable="false"><path fill="currentColor" d="M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z"/></svg>';

// One palette for dark mode, used by the media query and by theme="dark".
const DARK_PALETTE = `
  --_bg: var(--tidings-bg, #1d2027);
  --_fg: var(--tidings-fg, #e9ebef);
  --_muted: var(--tidings-muted, #a2a9b6);
  --_border: var(--tidings-border, #343945);
  --_hover: var(--tidings-hover, #262a33);
  --_unread-bg: var(--tidings-unread-bg, #1f2a3d);
  --_accent: var(--tidings-accent, #7aa5ff);
  --_info: var(--tidings-info, #7aa5ff);
  --_success: var(--tidings-success, #4cc38a);
  --_warning: var(--tidings-warning, #f0b43c);
  --_error: var(--tidings-error, #ff6b6f);
  --_shadow: var(--tidings-shadow, 0 12px 32px rgba(0, 0, 0, .5), 0 2px 6px rgba(0, 0, 0, .3));
`;

/** An element showing `text` as plain text (never HTML). */
function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

const STYLE = `
:host {
  --_font: var(--tidings-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  --_bg: var(--tidings-bg, #ffffff);
  --_fg: var(--tidings-fg, #1b1d23);
  --_muted: var(--tidings-muted, #5f6673);
  --_border: var(--tidings-border, #e2e5ea);
  --_hover: var(--tidings-hover, #f3f5f8);
  --_unread-bg: var(--tidings-unread-bg, #f2f7ff);
  --_accent: var(--tidings-accent, #2f6fed);
  --_badge-bg: var(--tidings-badge-bg, #e5383b);
  --_badge-fg: var(--tidings-badge-fg, #ffffff);
  --_radius: var(--tidings-radius, 10px);
  --_shadow: var(--tidings-shadow, 0 12px 32px rgba(20, 24, 33, .16), 0 2px 6px rgba(20, 24, 33, .08));
  --_width: var(--tidings-panel-width, 360px);
  --_info: var(--tidings-info, #2f6fed);
  --_success: var(--tidings-success, #1f9d55);
  --_warning: var(--tidings-warning, #c77700);
  --_error: var(--tidings-error, #d64045);
  --_live: var(--tidings-live, #1f9d55);
  --_pending: var(--tidings-pending, #e0a100);
  --_offline: var(--tidings-offline, #9aa1ad);
  --_z: var(--tidings-z-index, 1000);
  display: inline-block;
  position: relative;
  font-family: var(--_font);
  color: var(--_fg);
  line-height: 1.4;
}
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) {${DARK_PALETTE}}
}
:host([theme="dark"]) {${DARK_PALETTE}}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
button { font: inherit; color: inherit; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.bell {
  position: relative; display: inline-flex; align-items: center; justify-content: center;
  width: 40px; height: 40px; border-radius: 50%; border: 0; background: transparent;
  color: var(--tidings-bell-color, currentColor); cursor: pointer;
}
.bell:hover { background: var(--_hover); }
.bell:focus-visible, .panel :focus-visible, .toast :focus-visible {
  outline: 2px solid var(--_accent); outline-offset: 2px;
}
.badge {
  position: absolute; top: 2px; right: 0; min-width: 18px; height: 18px; padding: 0 5px;
  border-radius: 9px; background: var(--_badge-bg); color: var(--_badge-fg);
  font-size: 11px; font-weight: 700; line-height: 18px; text-align: center;
  box-shadow: 0 0 0 2px var(--tidings-badge-ring, var(--_bg));
}
.badge.bump { animation: bump .3s ease-out; }
@keyframes bump { 50% { transform: scale(1.25); } }
.dot {
  position: absolute; bottom: 5px; right: 6px; width: 9px; height: 9px; border-radius: 50%;
  background: var(--_offline); box-shadow: 0 0 0 2px var(--tidings-badge-ring, var(--_bg));
}
.dot[data-status="open"], .dot[data-status="sse"] { background: var(--_live); }
.dot[data-status="polling"] { background: var(--_pending); }
.dot[data-status="connecting"], .dot[data-status="reconnecting"] { background: var(--_pending); animation: pulse 1.2s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: .35; } }
.panel {
  position: absolute; top: calc(100% + 8px); right: 0; z-index: var(--_z);
  width: min(var(--_width), calc(100vw - 16px)); max-height: min(70vh, 560px);
  display: flex; flex-direction: column;
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_border);
  border-radius: var(--_radius); box-shadow: var(--_shadow); overflow: hidden;
  text-align: left;
}
:host([align="left"]) .panel { right: auto; left: 0; }
.panel:focus { outline: none; }
header {
  display: flex; align-items: center; gap: 8px; padding: 12px 14px 10px;
  border-bottom: 1px solid var(--_border);
}
h2 { font-size: 15px; font-weight: 650; margin: 0; flex: 1; }
.conn { display: inline-flex; align-items: center; gap: 5px; font-size: 12px; color: var(--_muted); }
.conn::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: var(--_offline); }
.conn[data-status="open"]::before, .conn[data-status="sse"]::before { background: var(--_live); }
.conn[data-status="polling"]::before, .conn[data-status="connecting"]::before, .conn[data-status="reconnecting"]::before { background: var(--_pending); }
.link-btn {
  border: 0; background: none; padding: 4px 6px; border-radius: 6px; cursor: pointer;
  color: var(--_accent); font-size: 13px; font-weight: 550;
}
.link-btn:hover { background: var(--_hover); }
.link-btn:disabled { color: var(--_muted); cursor: default; background: none; }
ul { list-style: none; margin: 0; padding: 0; overflow-y: auto; overscroll-behavior: contain; }
li {
  position: relative; display: flex; gap: 10px; padding: 11px 12px 11px 16px;
  border-bottom: 1px solid var(--_border);
}
li:last-child { border-bottom: 0; }
li:hover { background: var(--_hover); }
li:focus { outline: none; }
li:focus-visible { outline: 2px solid var(--_accent); outline-offset: -2px; }
li.unread { background: var(--_unread-bg); }
li.unread:hover { background: var(--_hover); }
li::before {
  content: ""; position: absolute; left: 0; top: 0; bottom: 0; width: 4px; background: var(--_level);
}
.level-info { --_level: var(--_info); }
.level-success { --_level: var(--_success); }
.level-warning { --_level: var(--_warning); }
.level-error { --_level: var(--_error); }
.content { flex: 1; min-width: 0; }
.title { display: block; font-size: 14px; font-weight: 600; color: inherit; text-decoration: none; overflow-wrap: anywhere; }
a.title:hover { text-decoration: underline; }
li:not(.unread) .title { font-weight: 500; }
.body { margin: 2px 0 0; font-size: 13px; color: var(--_muted); overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.meta { display: flex; align-items: center; gap: 6px; margin-top: 4px; font-size: 12px; color: var(--_muted); }
.tag { color: var(--_level); font-weight: 600; text-transform: capitalize; }
.read {
  flex: none; align-self: flex-start; width: 28px; height: 28px; border-radius: 50%;
  border: 1px solid var(--_border); background: var(--_bg); color: var(--_muted); cursor: pointer;
  display: inline-flex; align-items: center; justify-content: center;
}
.read:hover { color: var(--_accent); border-color: var(--_accent); }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.action {
  border: 1px solid var(--_border); background: var(--_bg); color: var(--_accent); cursor: pointer;
  padding: 3px 10px; border-radius: 6px; font-size: 13px; font-weight: 550; text-decoration: none;
}
.action:hover { border-color: var(--_accent); }
.action:disabled { color: var(--_muted); cursor: default; }
.action.done { color: var(--_success); border-color: var(--_success); }
progress { display: block; width: 100%; height: 6px; margin-top: 6px; accent-color: var(--_level); }
.tools { display: flex; gap: 2px; margin-top: 6px; font-size: 12px; }
.tools .link-btn { font-size: 12px; padding: 2px 6px; color: var(--_muted); }
.tools .link-btn:hover { color: var(--_accent); }
.tools select { font: inherit; font-size: 12px; color: var(--_muted); background: transparent; border: 0; border-radius: 6px; padding: 2px 4px; cursor: pointer; }
.empty { margin: 0; padding: 28px 16px; text-align: center; color: var(--_muted); font-size: 14px; }
.prefs { padding: 8px 16px 10px; border-bottom: 1px solid var(--_border); font-size: 14px; }
.prefs[hidden] { display: none; }
.prefs label { display: flex; align-items: center; gap: 8px; padding: 3px 0; cursor: pointer; }
.prefs h3 { margin: 8px 0 2px; font-size: 12px; font-weight: 600; color: var(--_muted); text-transform: uppercase; letter-spacing: .04em; }
.prefs .none { margin: 4px 0; color: var(--_muted); }
footer { display: flex; justify-content: space-between; gap: 8px; padding: 6px 8px; border-top: 1px solid var(--_border); }
.toasts {
  position: fixed; z-index: calc(var(--_z) + 1); right: 16px; bottom: 16px;
  display: flex; flex-direction: column; gap: 8px; width: min(360px, calc(100vw - 32px));
  pointer-events: none;
}
:host([toasts="top"]) .toasts { bottom: auto; top: 16px; }
.toast {
  pointer-events: auto; position: relative; display: flex; gap: 10px; padding: 12px 12px 12px 16px;
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_border);
  border-radius: var(--_radius); box-shadow: var(--_shadow); overflow: hidden;
  animation: toast-in .18s ease-out;
}
.toast::before { content: ""; position: absolute; left: 0; top: 0; bottom: 0; width: 4px; background: var(--_level); }
.toast .content { cursor: pointer; }
.toast .dismiss { flex: none; align-self: flex-start; border: 0; background: none; color: var(--_muted); cursor: pointer; padding: 4px; border-radius: 6px; }
.toast .dismiss:hover { background: var(--_hover); }
@keyframes toast-in { from { opacity: 0; transform: translateY(8px); } }
@media (prefers-reduced-motion: reduce) {
  .toast, .badge.bump, .dot { animation: none !important; }
}
`;

let instances = 0;

/**
 * `<tidings-bell>`. Attributes: `url`, `token` (or set the `client` property), `limit`
 * (items shown, default 20), `toasts` ("off" | "top" | default bottom), `toast-duration`
 * (ms), `browser-notifications` (offer desktop notifications), `theme` ("light" | "dark"),
 * `align` ("left" to open the panel rightwards).
 *
 * Events: `tidings-open`, `tidings-close`, `tidings-select` (detail: the notification;
 * cancelable — cancel to stop the link being followed), `tidings-action` (detail:
 * `{id, action}`, once the server took an action button's click) and
 * `tidings-action-error`.
 *
 * Each item offers its action buttons, "Mark unread" (when read), "Archive" and a snooze
 * menu; items whose `data.progress` (or `data.percent`) is a number show a progress bar,
 * which moves as the backend updates the notification in place.
 */
// Lets Node import the pure helpers above without a DOM.
const Base = globalThis.HTMLElement ?? class {};

export class TidingsBell extends Base {
  static get observedAttributes() {
    return ['url', 'token', 'limit'];
  }

  constructor() {
    super();
    this._uid = `tb${(instances += 1)}`;
    this._client = null;
    this._ownsClient = false;
    this._offs = [];
    this._open = false;
    this._nextBefore = undefined;
    this._timer = null;
    this._toastTimers = new Map();
    this._burst = null;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style>
<button class="bell" part="button" type="button" aria-haspopup="true" aria-expanded="false" aria-controls="${this._uid}-panel">
  ${BELL_ICON}<span class="badge" part="badge" aria-hidden="true" hidden></span><span class="dot" part="status" aria-hidden="true" data-status="closed"></span>
</button>
<div class="panel" part="panel" id="${this._uid}-panel" role="region" aria-labelledby="${this._uid}-title" tabindex="-1" hidden>
  <header>
    <h2 id="${this._uid}-title">Notifications</h2>
    <span class="conn" data-status="closed" aria-live="polite"></span>
    <button class="link-btn settings" type="button" aria-expanded="false" aria-controls="${this._uid}-prefs">Settings</button>
    <button class="link-btn all" type="button" disabled>Mark all read</button>
  </header>
  <section class="prefs" part="preferences" id="${this._uid}-prefs" aria-label="Notification settings" hidden>
    <label><input type="checkbox" class="dnd"> Do not disturb for 8 hours</label>
    <h3>Show</h3>
    <div class="switches"></div>
  </section>
  <ul part="list" aria-labelledby="${this._uid}-title"></ul>
  <p class="empty" part="empty">Loading…</p>
  <footer><button class="link-btn more" type="button" hidden>Load older</button><button class="link-btn archive-read" type="button" title="Archive everything read" hidden>Archive read</button><button class="link-btn desktop" type="button" hidden>Enable desktop notifications</button></footer>
</div>
<div class="toasts" part="toasts" role="status" aria-live="polite" aria-relevant="additions"></div>`;
    const $ = (sel) => root.querySelector(sel);
    this._els = {
      bell: $('.bell'), badge: $('.badge'), dot: $('.dot'), panel: $('.panel'), conn: $('.conn'),
      all: $('.all'), list: $('ul'), empty: $('.empty'), more: $('.more'), desktop: $('.desktop'),
      toasts: $('.toasts'), footer: $('footer'), settings: $('.settings'), prefs: $('.prefs'),
      archiveRead: $('.archive-read'),
      dnd: $('.dnd'), switches: $('.switches'),
    };
    this._prefs = null;
    this._acted = new Set(); // "<id> <action>" clicked here: shown as done
    this._els.settings.addEventListener('click', () => this._toggleSettings());
    this._els.prefs.addEventListener('change', (e) => this._onPreferenceChange(e));
    this._els.bell.addEventListener('click', () => this.toggle());
    this._els.all.addEventListener('click', () => this._markAll());
    this._els.archiveRead.addEventListener('click', () => this._client?.archiveRead().catch(() => {}));
    this._els.list.addEventListener('change', (e) => this._onSnoozeChoice(e));
    this._els.more.addEventListener('click', () => this._loadMore());
    this._els.desktop.addEventListener('click', () => this._askPermission());
    this._els.list.addEventListener('click', (e) => this._onListClick(e));
    this._els.list.addEventListener('keydown', (e) => this._onListKey(e));
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this._open) {
        e.stopPropagation();
        this.close({ focus: true });
      }
    });
    this._onDocClick = (e) => {
      if (this._open && !e.composedPath().includes(this)) this.close();
    };
    this._onFocusOut = (e) => {
      if (this._open && e.relatedTarget && !this.contains(e.relatedTarget) && !root.contains(e.relatedTarget)) this.close();
    };
  }

  // -- configuration ---------------------------------------------------------------------

  /** The Tidings client in use. Setting one makes the bell use it (and not close it). */
  get client() {
    return this._client;
  }

  set client(client) {
    this._detach();
    if (this._ownsClient) this._client?.close();
    this._client = client || null;
    this._ownsClient = false;
    if (this.isConnected) this._attach();
  }

  get isOpen() {
    return this._open;
  }

  get limit() {
    const n = parseInt(this.getAttribute('limit') || '', 10);
    return n > 0 ? Math.min(n, 100) : 20;
  }

  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value || !this.isConnected) return;
    if ((name === 'url' || name === 'token') && (this._ownsClient || !this._client)) {
      if (name === 'token' && this._ownsClient && this._client && value) {
        this._client.setToken(value);
        return;
      }
      this._makeOwnClient();
    } else if (name === 'limit') {
      this._render();
    }
  }

  connectedCallback() {
    // `bell.client = c` before this module loaded set a plain property on the element,
    // shadowing the setter: take it over now.
    if (Object.prototype.hasOwnProperty.call(this, 'client')) {
      const client = this.client;
      delete this.client;
      this.client = client;
    }
    if (!this._client) this._makeOwnClient();
    else this._attach();
    this._els.toasts.hidden = this.getAttribute('toasts') === 'off';
    this._updateDesktopButton();
  }

  disconnectedCallback() {
    this._detach();
    this.close();
    if (this._ownsClient) {
      this._client?.close();
      this._client = null;
      this._ownsClient = false;
    }
  }

  _makeOwnClient() {
    const token = this.getAttribute('token');
    if (!token) return;
    this._detach();
    if (this._ownsClient) this._client?.close();
    this._client = new Tidings({ url: this.getAttribute('url') || undefined, token });
    this._ownsClient = true;
    this._attach();
  }

  _attach() {
    const c = this._client;
    if (!c || this._offs.length) return;
    this._offs = [
      c.on('change', () => this._render()),
      c.on('unread', () => this._renderBadge(true)),
      c.on('status', () => this._renderStatus()),
      c.on('notification', (n, meta) => this._onNotification(n, meta)),
      c.on('refresh', () => this._render()),
      c.on('preferences', (p) => this._renderPreferences(p)),
    ];
    document.addEventListener('click', this._onDocClick, true);
    this.shadowRoot.addEventListener('focusout', this._onFocusOut);
    this._render();
    this._renderStatus();
  }

  _detach() {
    for (const off of this._offs) off();
    this._offs = [];
    document.removeEventListener('click', this._onDocClick, true);
    this.shadowRoot.removeEventListener('focusout', this._onFocusOut);
  }

  // -- open / close ------------------------------------------------------------------------

  /** Open the panel; focus moves to the newest item unless `focus` is false. */
  open({ focus = true } = {}) {
    if (this._open) return;
    this._open = true;
    this._els.panel.hidden = false;
    this._els.bell.setAttribute('aria-expanded', 'true');
    this._render();
    if (focus) (this._els.list.querySelector('li') || this._els.panel).focus({ preventScroll: true });
    this._timer = setInterval(() => this._refreshTimes(), 30000);
    this.dispatchEvent(new CustomEvent('tidings-open', { bubbles: true, composed: true }));
  }

  close({ focus = false } = {}) {
    if (!this._open) return;
    this._open = false;
    this._els.panel.hidden = true;
    this._els.bell.setAttribute('aria-expanded', 'false');
    clearInterval(this._timer);
    this._timer = null;
    if (focus) this._els.bell.focus();
    this.dispatchEvent(new CustomEvent('tidings-close', { bubbles: true, composed: true }));
  }

  toggle() {
    if (this._open) this.close({ focus: true });
    else this.open();
  }

  // -- rendering ---------------------------------------------------------------------------

  _render() {
    this._renderBadge(false);
    const c = this._client;
    const items = c ? c.notifications : [];
    const shown = this._nextBefore === undefined ? items.slice(0, this.limit) : items;
    const list = this._els.list;
    const active = this.shadowRoot.activeElement;
    const activeLi = active?.closest?.('li');
    const focusKey = activeLi ? [activeLi.dataset.id, active === activeLi ? 'li' : active.className] : null;

    const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
    const wanted = new Set(shown.map((n) => n.id));
    for (const [id, li] of existing) if (!wanted.has(id)) li.remove();
    let cursor = list.firstElementChild;
    for (const n of shown) {
      let li = existing.get(n.id);
      const sig = `${n.read_at ? 1 : 0}|${n.title}|${n.body}|${n.url}|${n.level}|${n.updated_at}|${JSON.stringify(n.actions)}|${progressOf(n.data)}`;
      if (!li || li.dataset.sig !== sig) {
        const fresh = this._renderItem(n, sig);
        if (li) li.replaceWith(fresh);
        li = fresh;
      }
      if (li !== cursor) list.insertBefore(li, cursor);
      cursor = li.nextElementSibling;
    }
    this._refreshTimes();
    if (focusKey) {
      const li = list.querySelector(`li[data-id="${CSS.escape(focusKey[0])}"]`);
      const target = li && (focusKey[1] === 'li' ? li : li.querySelector(`.${focusKey[1].split(' ')[0]}`) || li);
      if (target) target.focus({ preventScroll: true });
      else if (this._open) (list.querySelector('li') || this._els.panel).focus({ preventScroll: true });
    }
    const loaded = !c || c.status === 'closed' || items.length > 0 || c.loaded;
    this._els.empty.hidden = shown.length > 0;
    this._els.empty.textContent = loaded ? 'You’re all caught up.' : 'Loading…';
    this._els.all.disabled = !(c && c.unreadCount > 0);
    this._els.more.hidden = !(c && (this._nextBefore !== null) && items.length >= this.limit);
    this._els.archiveRead.hidden = !shown.some((n) => n.read_at);
    this._updateFooter();
  }

  _updateFooter() {
    const { more, desktop, archiveRead } = this._els;
    this._els.footer.hidden = more.hidden && desktop.hidden && archiveRead.hidden;
  }

  _renderItem(n, sig) {
    const level = LEVELS.has(n.level) ? n.level : 'info';
    const li = document.createElement('li');
    li.dataset.id = n.id;
    li.dataset.sig = sig;
    li.tabIndex = -1;
    li.className = `level-${level}${n.read_at ? '' : ' unread'}`;
    li.setAttribute('part', n.read_at ? 'item' : 'item unread');
    const content = document.createElement('div');
    content.className = 'content';
    const href = safeUrl(n.url);
    const title = textElement(href ? 'a' : 'span', 'title', n.title || '(untitled)');
    if (href) title.href = href;
    content.append(title);
    if (n.body) content.append(textElement('p', 'body', n.body));
    const progress = progressOf(n.data);
    if (progress !== null) {
      const bar = document.createElement('progress');
      bar.max = 100;
      bar.value = progress;
      bar.setAttribute('aria-label', `${n.title || 'Progress'}: ${Math.round(progress)}%`);
      content.append(bar);
    }
    const meta = document.createElement('div');
    meta.className = 'meta';
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = level;
    const time = document.createElement('time');
    time.dateTime = n.created_at || '';
    const when = Date.parse(n.created_at);
    if (Number.isFinite(when)) time.title = new Date(when).toLocaleString();
    meta.append(tag, document.createTextNode('·'), time);
    if (!n.read_at) {
      const sr = document.createElement('span');
      sr.className = 'sr';
      sr.textContent = 'Unread';
      meta.append(sr);
    }
    content.append(meta);
    const actions = this._renderActions(n);
    if (actions) content.append(actions);
    content.append(this._renderTools(n));
    li.append(content);
    if (!n.read_at) {
      const read = document.createElement('button');
      read.type = 'button';
      read.className = 'read';
      read.innerHTML = CHECK_ICON;
      read.title = 'Mark as read';
      read.setAttribute('aria-label', `Mark “${n.title || 'notification'}” as read`);
      li.append(read);
    }
    return li;
  }

  /** The notification's buttons: posted to the server (a webhook), or links if they have a url. */
  _renderActions(n) {
    if (!Array.isArray(n.actions) || !n.actions.length) return null;
    const row = document.createElement('div');
    row.className = 'actions';
    row.setAttribute('part', 'actions');
    for (const action of n.actions) {
      if (!action || typeof action.id !== 'string') continue;
      const href = safeUrl(action.url);
      const el = textElement(href ? 'a' : 'button', 'action', action.label || action.id);
      el.dataset.action = action.id;
      if (href) el.href = href;
      else el.type = 'button';
      if (this._acted.has(`${n.id} ${action.id}`)) {
        el.classList.add('done');
        el.setAttribute('aria-pressed', 'true');
      }
      row.append(el);
    }
    return row;
  }

  /** Per item: mark unread again, archive, snooze. */
  _renderTools(n) {
    const tools = document.createElement('div');
    tools.className = 'tools';
    const button = (cls, label, title) => {
      const b = textElement('button', `link-btn ${cls}`, label);
      b.type = 'button';
      b.setAttribute('aria-label', `${title} “${n.title || 'notification'}”`);
      return b;
    };
    if (n.read_at) tools.append(button('mark-unread', 'Mark unread', 'Mark unread'));
    tools.append(button('archive', 'Archive', 'Archive'));
    const snooze = document.createElement('select');
    snooze.className = 'snooze';
    snooze.setAttribute('aria-label', `Snooze “${n.title || 'notification'}”`);
    snooze.append(new Option('Snooze…', ''));
    for (const choice of snoozeChoices()) snooze.append(new Option(choice.label, choice.until.toISOString()));
    tools.append(snooze);
    return tools;
  }

  _onSnoozeChoice(event) {
    const select = event.target.closest?.('select.snooze');
    const li = select?.closest('li');
    if (!select || !li || !select.value || !this._client) return;
    this._client.snooze(li.dataset.id, select.value).catch(() => this._render());
  }

  _refreshTimes() {
    const now = Date.now();
    for (const time of this.shadowRoot.querySelectorAll('time')) {
      time.textContent = timeAgo(time.dateTime, now);
    }
  }

  _renderBadge(bump) {
    const count = this._client?.unreadCount ?? 0;
    const text = badgeText(count);
    const badge = this._els.badge;
    const changed = badge.textContent !== text;
    badge.textContent = text;
    badge.hidden = !text;
    if (bump && changed && text) {
      badge.classList.remove('bump');
      void badge.offsetWidth; // restart the animation
      badge.classList.add('bump');
    }
    const status = STATUS_LABEL[this._client?.status] || STATUS_LABEL.closed;
    this._els.bell.setAttribute('aria-label', `Notifications, ${count ? `${count} unread` : 'none unread'}, ${status.replace('…', '')}`);
    this._els.all.disabled = !(count > 0);
  }

  _renderStatus() {
    const status = this._client?.status || 'closed';
    this._els.dot.dataset.status = status;
    this._els.conn.dataset.status = status;
    this._els.conn.textContent = STATUS_LABEL[status] || status;
    this._els.bell.title = `Notifications — ${STATUS_LABEL[status] || status}`;
    this._renderBadge(false);
    this._render();
  }

  // -- actions -----------------------------------------------------------------------------

  _onListClick(event) {
    const li = event.target.closest('li');
    if (!li || !this._client) return;
    const id = li.dataset.id;
    const action = event.target.closest('.action');
    if (action && action.tagName === 'BUTTON') {
      this._act(li, id, action);
      return;
    }
    if (event.target.closest('.mark-unread')) {
      li.focus({ preventScroll: true });
      this._client.markUnread(id).catch(() => {});
      return;
    }
    if (event.target.closest('.archive')) {
      this._client.archive(id).catch(() => {});
      return;
    }
    if (event.target.closest('select')) return;
    if (event.target.closest('.read')) {
      // Keep keyboard focus on the row once its button disappears.
      li.focus({ preventScroll: true });
      this._client.markRead(id).catch(() => {});
      return;
    }
    const link = event.target.closest('a.title');
    const n = this._client.notifications.find((x) => x.id === id);
    if (!n) return;
    const select = new CustomEvent('tidings-select', { detail: n, bubbles: true, composed: true, cancelable: true });
    if (!n.read_at) this._client.markRead(id).catch(() => {});
    if (!this.dispatchEvent(select) && link) event.preventDefault();
  }

  async _act(li, id, button) {
    const name = button.dataset.action;
    button.disabled = true;
    const detail = { id, action: name };
    try {
      await this._client.act(id, name);
      this._acted.add(`${id} ${name}`);
      button.classList.add('done');
      button.setAttribute('aria-pressed', 'true');
      const n = this._client.notifications.find((x) => x.id === id);
      if (n && !n.read_at) this._client.markRead(id).catch(() => {});
      this.dispatchEvent(new CustomEvent('tidings-action', { detail, bubbles: true, composed: true }));
    } catch (error) {
      button.disabled = false;
      this.dispatchEvent(new CustomEvent('tidings-action-error', { detail: { ...detail, error }, bubbles: true, composed: true }));
    }
  }

  _onListKey(event) {
    const items = [...this._els.list.querySelectorAll('li')];
    const li = event.target.closest('li');
    const index = items.indexOf(li);
    let next = null;
    if (event.key === 'ArrowDown') next = items[Math.min(items.length - 1, index + 1)];
    else if (event.key === 'ArrowUp') next = index <= 0 ? null : items[index - 1];
    else if (event.key === 'Home') next = items[0];
    else if (event.key === 'End') next = items[items.length - 1];
    else if ((event.key === 'Enter' || event.key === ' ') && event.target === li) {
      event.preventDefault();
      const link = li.querySelector('a.title');
      if (link) link.click();
      else if (li.classList.contains('unread')) this._client?.markRead(li.dataset.id).catch(() => {});
      return;
    } else return;
    event.preventDefault();
    if (event.key === 'ArrowUp' && index <= 0) this._els.all.disabled ? this._els.panel.focus() : this._els.all.focus();
    else next?.focus();
  }

  _markAll() {
    this._client?.markAllRead().catch(() => {});
    (this._els.list.querySelector('li') || this._els.panel).focus({ preventScroll: true });
  }

  async _loadMore() {
    const c = this._client;
    if (!c) return;
    const items = c.notifications;
    const before = this._nextBefore || items[items.length - 1]?.id;
    this._els.more.disabled = true;
    try {
      const page = await c.list({ limit: this.limit, before });
      this._nextBefore = page.next_before ?? null;
      this._render();
    } catch {
      /* the button stays; try again */
    } finally {
      this._els.more.disabled = false;
    }
  }

  // -- preferences ---------------------------------------------------------------------------

  async _toggleSettings() {
    const show = this._els.prefs.hidden;
    this._els.prefs.hidden = !show;
    this._els.settings.setAttribute('aria-expanded', String(show));
    if (!show || !this._client) return;
    this._renderPreferences(this._prefs);
    try {
      this._renderPreferences(await this._client.preferences());
    } catch { /* shown from what is known; the next change retries */ }
  }

  /** Switches for the categories and types this user has received, and do-not-disturb. */
  _renderPreferences(prefs) {
    if (prefs) this._prefs = prefs;
    const p = this._prefs || { types: {}, categories: {}, do_not_disturb_until: null };
    const seen = { categories: new Set(Object.keys(p.categories || {})), types: new Set(Object.keys(p.types || {})) };
    for (const n of this._client ? this._client.notifications : []) {
      if (n.category) seen.categories.add(n.category);
      if (n.type) seen.types.add(n.type);
    }
    const until = p.do_not_disturb_until ? Date.parse(p.do_not_disturb_until) : 0;
    this._els.dnd.checked = until > Date.now();
    const box = this._els.switches;
    box.replaceChildren();
    for (const kind of ['categories', 'types']) {
      for (const name of [...seen[kind]].sort()) {
        const label = document.createElement('label');
        const input = document.createElement('input');
        input.type = 'checkbox';
        input.dataset.kind = kind;
        input.dataset.name = name;
        input.checked = p[kind]?.[name]?.enabled !== false;
        label.append(input, ` ${name}`);
        if (kind === 'types') label.title = 'notification type';
        box.append(label);
      }
    }
    if (!box.children.length) {
      const none = document.createElement('p');
      none.className = 'none';
      none.textContent = 'Nothing received yet.';
      box.append(none);
    }
  }

  async _onPreferenceChange(event) {
    const input = event.target;
    if (!this._client || input?.type !== 'checkbox') return;
    let changes;
    if (input.classList.contains('dnd')) {
      const until = input.checked ? new Date(Date.now() + 8 * 3600 * 1000).toISOString() : null;
      changes = { do_not_disturb_until: until };
    } else {
      changes = { [input.dataset.kind]: { [input.dataset.name]: { enabled: input.checked } } };
    }
    try {
      this._renderPreferences(await this._client.setPreferences(changes));
    } catch {
      this._renderPreferences(null); // back to what the server last said
    }
  }

  // -- toasts and desktop notifications ----------------------------------------------------

  _onNotification(n, meta) {
    // Do-not-disturb: the badge counts it, but no toast and no desktop notification.
    if (meta?.silent) return;
    this._desktop(n);
    if (this.getAttribute('toasts') === 'off') return;
    // A catch-up after a reconnect can bring many at once: one summary, not a toast storm.
    (this._burst ||= []).push(n);
    if (this._burst.length === 1) {
      setTimeout(() => {
        const burst = this._burst;
        this._burst = null;
        if (burst.length > 3) this._summaryToast(burst.length);
        else for (const item of burst) this._toast(item);
      }, 60);
    }
  }

  _summaryToast(count) {
    this._toast({
      id: `summary-${Date.now()}`,
      level: 'info',
      title: `${count} new notifications`,
      body: 'Open the bell to see them.',
      summary: true,
    });
  }

  _toast(n) {
    const level = LEVELS.has(n.level) ? n.level : 'info';
    const box = this._els.toasts;
    while (box.children.length >= 3) this._dismiss(box.firstElementChild);
    const toast = document.createElement('div');
    toast.className = `toast level-${level}`;
    toast.setAttribute('part', 'toast');
    toast.dataset.id = n.id;
    const content = document.createElement('div');
    content.className = 'content';
    content.tabIndex = 0;
    content.setAttribute('role', 'button');
    content.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        content.click();
      }
    });
    content.append(textElement('strong', 'title', n.title || '(untitled)'));
    if (n.body) content.append(textElement('p', 'body', n.body));
    content.addEventListener('click', () => {
      this._dismiss(toast);
      if (n.summary) {
        this.open();
        return;
      }
      const href = safeUrl(n.url);
      const select = new CustomEvent('tidings-select', { detail: n, bubbles: true, composed: true, cancelable: true });
      if (this.dispatchEvent(select) && href) {
        this._client?.markRead(n.id).catch(() => {});
        globalThis.location.assign(href);
      } else {
        this.open();
      }
    });
    const dismiss = document.createElement('button');
    dismiss.type = 'button';
    dismiss.className = 'dismiss';
    dismiss.innerHTML = CLOSE_ICON;
    dismiss.setAttribute('aria-label', 'Dismiss');
    dismiss.addEventListener('click', () => this._dismiss(toast));
    toast.append(content, dismiss);
    box.append(toast);
    const duration = parseInt(this.getAttribute('toast-duration') || '', 10) || 6000;
    const arm = () => this._toastTimers.set(toast, setTimeout(() => this._dismiss(toast), duration));
    const disarm = () => clearTimeout(this._toastTimers.get(toast));
    toast.addEventListener('mouseenter', disarm);
    toast.addEventListener('focusin', disarm);
    toast.addEventListener('mouseleave', arm);
    arm();
  }

  _dismiss(toast) {
    if (!toast) return;
    clearTimeout(this._toastTimers.get(toast));
    this._toastTimers.delete(toast);
    toast.remove();
  }

  _desktop(n) {
    if (!this.hasAttribute('browser-notifications')) return;
    const N = globalThis.Notification;
    if (!N || N.permission !== 'granted' || document.visibilityState === 'visible') return;
    try {
      // The tag makes several open tabs show one desktop notification, not one each.
      const note = new N(n.title || 'Notification', { body: n.body || '', tag: `tidings:${n.id}` });
      note.onclick = () => {
        globalThis.focus?.();
        this.open();
        note.close();
      };
    } catch { /* some browsers only allow it from a service worker */ }
  }

  _updateDesktopButton() {
    const N = globalThis.Notification;
    this._els.desktop.hidden = !(this.hasAttribute('browser-notifications') && N && N.permission === 'default');
    this._updateFooter();
  }

  async _askPermission() {
    // Called from a click: browsers only grant the prompt on a user gesture.
    try {
      await globalThis.Notification?.requestPermission();
    } finally {
      this._updateDesktopButton();
    }
  }
}

if (globalThis.customElements && !customElements.get('tidings-bell')) {
  customElements.define('tidings-bell', TidingsBell);
}

export default TidingsBell;
