// tidings admin: live figures, connections, a user's inbox and a send form.
// Plain script, no build step. The API key lives in sessionStorage only.
"use strict";

const KEY = "tidings.admin.apiKey";
const POLL_MS = 2000;
const POINTS = 60;

const $ = (id) => document.getElementById(id);
const history = { connections: [], creates: [], deliveries: [], latency: [] };
let previous = null;
let timer = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${key}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return payload;
}

// -- sign-in ----------------------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    const stats = await api("/api/v1/stats");
    showDashboard(true);
    render(stats);
    start();
    loadTemplates();
  } catch (error) {
    sessionStorage.removeItem(KEY);
    showDashboard(false);
    const message = error.status === 401 ? "That API key was refused." : `Cannot reach the server: ${error.message}`;
    const box = $("sign-in-error");
    box.textContent = message;
    box.hidden = false;
  }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  stop();
  previous = null;
  for (const name of Object.keys(history)) history[name] = [];
  showDashboard(false);
}

function showDashboard(on) {
  $("dashboard").hidden = !on;
  $("sign-in").hidden = on;
  $("sign-out").hidden = !on;
  if (on) $("sign-in-error").hidden = true;
}

// -- live figures ------------------------------------------------------------------------

function start() {
  stop();
  timer = setInterval(tick, POLL_MS);
  refreshConnections();
}

function stop() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

async function tick() {
  try {
    render(await api("/api/v1/stats"));
    await refreshConnections();
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.status === 401) {
      signOut();
      return;
    }
    $("status").textContent = `Not updated: ${error.message}`;
  }
}

function render(stats) {
  const now = performance.now() / 1000;
  const c = stats.connections;
  $("fig-connections").textContent = c.total;
  $("fig-connections-detail").textContent =
    `${c.websocket} WebSocket · ${c.sse} SSE · ${stats.users_online} users · ${stats.processes} process${stats.processes === 1 ? "" : "es"}`;
  push("connections", c.total);
  const n = stats.notifications;
  $("fig-creates-detail").textContent = `${n.last_minute} last minute · ${n.total} stored`;
  $("fig-deliveries-detail").textContent = `${stats.deliveries} since start · ${stats.slow_consumer_closes} slow closes`;
  if (previous !== null) {
    const seconds = Math.max(now - previous.at, 0.001);
    const creates = Math.max(0, stats.created - previous.stats.created) / seconds;
    const deliveries = Math.max(0, stats.deliveries - previous.stats.deliveries) / seconds;
    $("fig-creates").textContent = rate(creates);
    $("fig-deliveries").textContent = rate(deliveries);
    push("creates", creates);
    push("deliveries", deliveries);
    const p99 = percentile(stats.latency, previous.stats.latency, 0.99);
    $("fig-latency").textContent = p99 === null ? "–" : `≤ ${duration(p99)}`;
    push("latency", p99 === null ? 0 : p99);
  }
  previous = { at: now, stats };
  for (const name of Object.keys(history)) draw(name);
}

function push(name, value) {
  const series = history[name];
  series.push(value);
  if (series.length > POINTS) series.shift();
}

function draw(name) {
  const series = history[name];
  const line = document.querySelector(`[data-figure="${name}"] polyline`);
  const area = document.querySelector(`[data-figure="${name}"] polygon`);
  if (series.length === 0) {
    line.setAttribute("points", "");
    area.setAttribute("points", "");
    return;
  }
  const values = series.length === 1 ? [series[0], series[0]] : series;
  const top = Math.max(...values) || 1;
  const step = 120 / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(31 - (v / top) * 28).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  area.setAttribute("points", `0,32 ${points.join(" ")} 120,32`);
}

// The p99 over the last interval from two cumulative histograms: the smallest bucket
// bound holding 99% of the fan-outs since the previous poll (an upper bound).
function percentile(now, before, q) {
  if (!now || !before) return null;
  const counts = now.counts.map((v, i) => v - (before.counts[i] || 0));
  const total = counts[counts.length - 1];
  if (!(total > 0)) return null;
  for (let i = 0; i < counts.length; i += 1) {
    if (counts[i] >= q * total) return now.le[i];
  }
  return now.le[now.le.length - 1];
}

function rate(value) {
  return value >= 100 ? Math.round(value).toString() : value.toFixed(1);
}

function duration(seconds) {
  return seconds < 1 ? `${Math.round(seconds * 1000 * 10) / 10} ms` : `${seconds} s`;
}

// -- connections ---------------------------------------------------------------------------

async function refreshConnections() {
  const user = $("filter-user").value.trim();
  const query = user ? `?user=${encodeURIComponent(user)}` : "";
  const { items } = await api(`/api/v1/connections${query}`);
  const body = document.querySelector("#connections tbody");
  const rows = items.map((conn) => {
    const tr = document.createElement("tr");
    tr.dataset.id = conn.id;
    const cells = [
      conn.user,
      conn.transport,
      conn.process,
      time(conn.connected_at),
      time(conn.last_activity),
      conn.user_agent || "",
    ];
    cells.forEach((text, index) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (index === 5) {
        td.className = "ua";
        td.title = text;
      }
      tr.append(td);
    });
    return tr;
  });
  body.replaceChildren(...rows);
  $("connections-empty").hidden = items.length > 0;
}

function time(iso) {
  return new Date(iso).toLocaleTimeString();
}

// -- a user's inbox -------------------------------------------------------------------------

async function showUser() {
  const user = $("user-id").value.trim();
  if (!user) return;
  const roles = $("user-roles").value.trim();
  const summary = $("user-summary");
  try {
    const query = roles ? `?roles=${encodeURIComponent(roles)}` : "";
    const [page, live] = await Promise.all([
      api(`/api/v1/users/${encodeURIComponent(user)}/notifications${query}`),
      api(`/api/v1/connections?user=${encodeURIComponent(user)}`),
    ]);
    const presence = live.items.length
      ? `online (${live.items.length} connection${live.items.length === 1 ? "" : "s"})`
      : "offline";
    summary.className = "";
    summary.textContent = `${user}: ${page.unread_count} unread · ${presence}`;
    const items = page.items.map((item) => {
      const li = document.createElement("li");
      if (!item.read_at) li.className = "unread";
      const level = document.createElement("span");
      level.className = "level";
      level.textContent = item.level;
      const title = document.createElement("span");
      title.textContent = item.title;
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = ` · ${item.type} · ${new Date(item.created_at).toLocaleString()}`;
      li.append(level, title, when);
      return li;
    });
    $("user-inbox").replaceChildren(...items);
    $("user-preferences").textContent = await preferencesOf(user);
  } catch (error) {
    summary.className = "error";
    summary.textContent = error.message;
    $("user-inbox").replaceChildren();
  }
}

// The user's preferences in one line (servers without preferences: nothing).
async function preferencesOf(user) {
  let prefs;
  try {
    prefs = await api(`/api/v1/users/${encodeURIComponent(user)}/preferences`);
  } catch {
    return "";
  }
  const off = (switches) =>
    Object.entries(switches || {})
      .filter(([, value]) => !value.enabled)
      .map(([name]) => name);
  const parts = [];
  const types = off(prefs.types);
  const categories = off(prefs.categories);
  if (types.length) parts.push(`types off: ${types.join(", ")}`);
  if (categories.length) parts.push(`categories off: ${categories.join(", ")}`);
  if (prefs.do_not_disturb_until) {
    parts.push(`do not disturb until ${new Date(prefs.do_not_disturb_until).toLocaleString()}`);
  }
  return `Preferences: ${parts.length ? parts.join(" · ") : "everything on"}`;
}

async function sendTest() {
  const user = $("user-id").value.trim();
  const summary = $("user-summary");
  if (!user) {
    summary.className = "error";
    summary.textContent = "Name a user first.";
    return;
  }
  try {
    await api("/api/v1/test", { method: "POST", body: { user } });
    await showUser();
  } catch (error) {
    summary.className = "error";
    summary.textContent = error.message;
  }
}

// -- templates (when the server has them) ------------------------------------------------------

async function loadTemplates() {
  let items;
  try {
    ({ items } = await api("/api/v1/templates"));
  } catch (error) {
    $("templates-panel").hidden = true; // a server without templates
    return;
  }
  const rows = items.map((template) => {
    const tr = document.createElement("tr");
    for (const text of [template.type, String(template.version), template.title || ""]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  document.querySelector("#templates tbody").replaceChildren(...rows);
  $("templates-empty").hidden = items.length > 0;
  const select = $("preview-type");
  const chosen = select.value;
  select.replaceChildren(
    ...items.map((template) => {
      const option = document.createElement("option");
      option.value = option.textContent = template.type;
      return option;
    }),
  );
  if (items.some((t) => t.type === chosen)) select.value = chosen;
  $("templates-panel").hidden = false; // shown once filled in
}

async function preview(event) {
  event.preventDefault();
  const type = $("preview-type").value;
  const problem = $("preview-error");
  problem.textContent = "";
  for (const id of ["preview-title", "preview-body", "preview-url"]) $(id).textContent = "";
  if (!type) {
    problem.textContent = "No template to preview.";
    return;
  }
  let data;
  try {
    data = JSON.parse($("preview-data").value || "{}");
  } catch {
    problem.textContent = "Data is not valid JSON.";
    return;
  }
  const body = { data };
  const actor = $("preview-actor").value.trim();
  if (actor) body.actor = actor;
  const locale = $("preview-locale").value.trim();
  if (locale) body.locale = locale;
  try {
    const shown = await api(`/api/v1/templates/${encodeURIComponent(type)}/preview`, {
      method: "POST",
      body,
    });
    $("preview-title").textContent = shown.title;
    $("preview-body").textContent = shown.body;
    $("preview-url").textContent = shown.url || "";
  } catch (error) {
    problem.textContent = error.message;
  }
}

// -- send -----------------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const form = event.target;
  const audience = form.elements.audience.value;
  const target = form.elements.target.value.trim();
  const result = $("send-result");
  let to;
  if (audience === "all") to = { all: true };
  else if (!target) {
    result.className = "error";
    result.textContent = `Name the ${audience} to send to.`;
    return;
  } else to = audience === "user" ? { users: [target] } : { roles: [target] };
  const body = {
    to,
    title: form.elements.title.value,
    body: form.elements.body.value,
    level: form.elements.level.value,
    type: form.elements.type.value.trim() || "announcement",
  };
  try {
    const created = await api("/api/v1/notifications", { method: "POST", body });
    result.className = "ok";
    result.textContent = `Sent ${created.id}`;
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  }
}

// -- wiring -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("api-key").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("filter-user").addEventListener("input", () => refreshConnections().catch(() => {}));
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showUser();
  });
  $("user-test").addEventListener("click", sendTest);
  $("send-form").addEventListener("submit", send);
  $("preview-form").addEventListener("submit", preview);
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key);
  else showDashboard(false);
});
