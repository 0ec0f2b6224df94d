// orderd dashboard: plain JavaScript, no framework, no build step. Every
// figure comes from the API with the token the operator gave
// (sessionStorage, this tab only); the page itself holds no data.
"use strict";

const WINDOW_S = 300;       // charts show the last five minutes
const POLL_MS = 2000;       // /v1/stats while the event stream is down
const LISTS_MS = 5000;      // alerts, failures, dead notifications
const STREAM_IDLE_MS = 20000; // no byte for this long: reconnect
const TOKEN_KEY = "orderd.token";
const ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

const $ = (id) => document.getElementById(id);

// ---- API --------------------------------------------------------------

class AuthError extends Error {}
class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : "HTTP " + status);
    this.status = status;
    this.code = e && e.code;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY) || "";

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (res.status === 401) {
    needToken(!!token);
    throw new AuthError("unauthorized");
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ---- auth prompt -----------------------------------------------------------

let authOpen = false;

function needToken(refused) {
  stopStream();
  if (authOpen) return;
  authOpen = true;
  const d = $("auth");
  $("auth-error").textContent = refused ? "That token was refused. Enter another one." : "";
  $("auth-token").value = "";
  if (!d.open) d.showModal();
  $("auth-token").focus();
}

function setupAuth() {
  const d = $("auth");
  $("auth-form").addEventListener("submit", (ev) => {
    const v = $("auth-token").value.trim();
    if (!v) {
      ev.preventDefault();
      $("auth-error").textContent = "Enter a token.";
      return;
    }
    token = v;
    sessionStorage.setItem(TOKEN_KEY, v);
    authOpen = false;
    $("signout").hidden = false;
    announce("Token saved for this tab.");
    restart();
  });
  // Without a token nothing can be shown: keep the prompt up.
  d.addEventListener("cancel", (ev) => ev.preventDefault());
  $("signout").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("signout").hidden = true;
    announce("Token forgotten.");
    restart();
  });
  $("signout").hidden = !token;
}

// ---- announcements: one polite region, only for things the user did or
// changes of connection mode, never per tick.

let toastTimer = 0;
function announce(msg, quietly) {
  $("status").textContent = msg;
  if (quietly) return;
  const t = $("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 4000);
}

// ---- formatting -----------------------------------------------------------

function fmtRate(v) {
  if (v == null || !isFinite(v)) return "–";
  if (v >= 1000) return (v / 1000).toFixed(1) + "k";
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
function fmtInt(v) { return v == null ? "–" : Number(v).toLocaleString("en-US"); }
function fmtAge(s) {
  if (s == null || !isFinite(s)) return "–";
  s = Math.max(0, s);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " m " + Math.floor(s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
function fmtPct(v) { return v == null || !isFinite(v) ? "–" : (v * 100).toFixed(v < 0.1 ? 2 : 1) + " %"; }
function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString("en-GB", { hour12: false });
}
function clock(d) { return d.toLocaleTimeString("en-GB", { hour12: false }); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function setText(id, v) {
  const e = $(id);
  if (e.textContent !== v) e.textContent = v;
}

// ---- charts: canvas, drawn here; series told apart by colour and dash.

const series = {
  submitted: [], completed: [], rejected: [], failed: [],
  error: [], threshold: [], pending: [], processing: [],
};

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const charts = {
  throughput: { id: "c-throughput", keys: ["submitted", "completed", "rejected", "failed"],
    dash: { rejected: [6, 4], failed: [2, 3] }, fmt: fmtRate, desc: "d-tp", unit: "/s" },
  error: { id: "c-error", keys: ["error", "threshold"], dash: { threshold: [6, 4] },
    fmt: fmtPct, desc: "d-err", min: 0.01, unit: "" },
  backlog: { id: "c-backlog", keys: ["pending", "processing"], dash: { processing: [6, 4] },
    fmt: (v) => (v < 10 && v % 1 ? v.toFixed(1) : fmtInt(Math.round(v))), desc: "d-backlog", unit: "" },
};

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  // Four grid steps: tops whose quarters read well (0.25, 0.5, 1, 2, 2.5).
  for (const m of [1, 2, 4, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart(c, now) {
  const cv = $(c.id);
  const w = cv.clientWidth, h = cv.clientHeight;
  if (!w || !h) return;
  const dpr = window.devicePixelRatio || 1;
  if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
    cv.width = Math.round(w * dpr);
    cv.height = Math.round(h * dpr);
  }
  const g = cv.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  const t0 = now - WINDOW_S * 1000;
  let max = c.min || 0;
  for (const k of c.keys) for (const p of series[k]) if (p.t >= t0 && p.v > max) max = p.v;
  max = niceMax(max * 1.1);
  const font = "11px " + cssVar("--sans");
  g.font = font;
  g.lineWidth = 1;
  g.strokeStyle = cssVar("--grid");
  g.fillStyle = cssVar("--muted");
  g.textBaseline = "middle";
  g.textAlign = "right";
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, Math.round(y) + 0.5); g.lineTo(left + pw, Math.round(y) + 0.5); g.stroke();
    g.fillText(c.fmt((max * i) / 4), left - 6, y);
  }
  g.textAlign = "center";
  g.textBaseline = "alphabetic";
  for (let m = 0; m <= 5; m++) {
    const x = left + (pw * m) / 5;
    g.fillText(m === 5 ? "now" : "-" + (5 - m) + " m", Math.min(x, left + pw - 12), h - 5);
  }
  for (const k of c.keys) {
    const pts = series[k];
    g.strokeStyle = cssVar("--s-" + k);
    g.lineWidth = 2;
    g.setLineDash(c.dash[k] || []);
    g.beginPath();
    let started = false;
    for (const p of pts) {
      if (p.t < t0) continue;
      const x = left + ((p.t - t0) / (WINDOW_S * 1000)) * pw;
      const y = top + ph - (Math.min(p.v, max) / max) * ph;
      if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
    }
    g.stroke();
    g.setLineDash([]);
  }
  cv.dataset.points = String(c.keys.reduce((n, k) => n + series[k].length, 0));
  cv.dataset.last = c.keys.map((k) => {
    const s = series[k];
    return s.length ? s[s.length - 1].v : "";
  }).join(",");
}

// Text alternatives, refreshed every 10 s (not live: no chatter).
function describeCharts(now) {
  const t0 = now - WINDOW_S * 1000;
  for (const c of Object.values(charts)) {
    const parts = [];
    for (const k of c.keys) {
      const pts = series[k].filter((p) => p.t >= t0);
      if (!pts.length) continue;
      const vals = pts.map((p) => p.v);
      const avg = vals.reduce((a, b) => a + b, 0) / vals.length;
      parts.push(k + ": now " + c.fmt(vals[vals.length - 1]) + c.unit + ", average " +
        c.fmt(avg) + c.unit + ", peak " + c.fmt(Math.max(...vals)) + c.unit);
    }
    $(c.desc).textContent = parts.length ? "Last 5 minutes. " + parts.join("; ") + "." : "No data yet.";
  }
}

function push(key, t, v) {
  if (v == null || !isFinite(v)) return;
  const s = series[key];
  s.push({ t, v });
  const cut = t - WINDOW_S * 1000 - 5000;
  while (s.length && s[0].t < cut) s.shift();
}

let frame = 0;
function redraw() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const now = Date.now();
    for (const c of Object.values(charts)) drawChart(c, now);
  });
}

// ---- stats -----------------------------------------------------------------

function onStats(stats) {
  const now = Date.now();
  const tp = stats.throughput || {};
  const rate = {
    submitted: tp.submitted_per_s,
    completed: tp.completed_per_s,
    rejected: tp.rejected_per_s,
    failed: tp.failed_per_s,
  };
  for (const k of Object.keys(rate)) {
    push(k, now, rate[k]);
    setText("t-" + k, fmtRate(rate[k]));
  }
  const o = stats.orders || {};
  push("pending", now, o.pending);
  push("processing", now, o.processing);
  setText("t-backlog", fmtInt(o.pending));
  setText("t-processing", "pending · " + fmtInt(o.processing) + " processing");
  setText("t-oldest", fmtAge(stats.oldest_pending_age_seconds));
  const alerts = stats.alerts || [];
  const hi = alerts.find((a) => a.name === "HighErrorRate");
  const thr = stats.alert_threshold;
  push("error", now, stats.error_rate);
  push("threshold", now, thr);
  setText("t-error", fmtPct(stats.error_rate));
  setText("t-threshold", "threshold " + fmtPct(thr));
  $("tile-error").dataset.state = hi && hi.state === "firing" ? "firing" : "ok";
  if (alerts.length) renderAlerts(alerts);
  const reps = stats.replicas || [];
  setText("t-replicas", fmtInt(stats.replicas_seen != null ? stats.replicas_seen : reps.length));
  setText("m-replica", reps[0] || "–");
  setText("m-backend", stats.backend || "–");
  setText("m-uptime", fmtAge(stats.uptime_seconds));
  renderReplicas(reps, stats.leases);
  redraw();
}

function renderReplicas(reps, leases) {
  const held = new Map();
  for (const l of leases || []) held.set(l.replica, l.orders);
  const names = [...new Set([...reps, ...held.keys()])];
  const key = JSON.stringify([names, [...held]]);
  const tb = $("replicas").tBodies[0];
  if (tb.dataset.key === key) return;
  tb.dataset.key = key;
  tb.replaceChildren(...(names.length ? names.map((r, i) =>
    el("tr", {}, el("td", { class: "mono" }, r + (i === 0 && reps[0] === r ? " (this one)" : "")),
      el("td", { class: "num" }, leases ? fmtInt(held.get(r) || 0) : "–"))) :
    [el("tr", {}, el("td", { colspan: 2, class: "muted" }, "No replica reported a heartbeat."))]));
}

function renderAlerts(alerts) {
  const ul = $("alerts");
  const key = JSON.stringify(alerts.map((a) => [a.name, a.state, a.since]));
  if (ul.dataset.key === key) {
    // Values move; states did not: update the figures in place.
    alerts.forEach((a, i) => {
      const v = ul.children[i] && ul.children[i].querySelector(".val");
      if (v) v.textContent = alertValue(a);
    });
    return;
  }
  ul.dataset.key = key;
  ul.replaceChildren(...alerts.map((a) => {
    const firing = a.state === "firing";
    return el("li", {},
      el("span", {}, el("strong", { text: a.name }), " ", el("span", { class: "muted val", text: alertValue(a) })),
      el("span", { class: "badge " + (firing ? "firing" : "ok"), text: firing ? "firing" : a.state || "ok" }));
  }));
}

function alertValue(a) {
  const f = a.name === "HighErrorRate" ? fmtPct : fmtAge;
  return f(a.value) + " / " + f(a.threshold) + (a.since ? " since " + clock(new Date(a.since)) : "");
}

// ---- live data: fetch() streaming /v1/events, polling as the fallback ------

let streamCtl = null;
let streamUp = false;
let backoff = 1000;
let retryTimer = 0;
let pollTimer = 0;
let generation = 0;

function setMode(mode, label) {
  const m = $("m-mode");
  if (m.dataset.mode === mode) return;
  m.dataset.mode = mode;
  m.textContent = label;
  if (!feed.length)
    setText("feed-empty", mode === "live" ? "No transitions yet." :
      "Transitions come with the live stream (GET /v1/events); retrying it.");
  // The pill shows it; screen readers hear it once per change.
  announce("Data: " + label + ".", true);
}

async function pollOnce(gen) {
  try {
    const s = await api("GET", "/v1/stats");
    if (gen !== generation) return;
    onStats(s);
    if (!streamUp) setMode("poll", "polling every 2 s");
  } catch (e) {
    if (e instanceof AuthError) return;
    setMode("off", "unreachable");
  }
}

function startPolling() {
  if (pollTimer) return;
  const gen = generation;
  pollOnce(gen);
  pollTimer = setInterval(() => { if (!streamUp) pollOnce(gen); }, POLL_MS);
}
function stopPolling() { clearInterval(pollTimer); pollTimer = 0; }

function stopStream() {
  generation++;
  clearTimeout(retryTimer);
  if (streamCtl) streamCtl.abort();
  streamCtl = null;
  streamUp = false;
  stopPolling();
}

function scheduleStream(gen) {
  clearTimeout(retryTimer);
  const wait = backoff * (0.75 + Math.random() * 0.5);
  backoff = Math.min(backoff * 2, 30000);
  retryTimer = setTimeout(() => { if (gen === generation) openStream(gen); }, wait);
}

async function openStream(gen) {
  const ctl = new AbortController();
  streamCtl = ctl;
  let idle = 0;
  const kick = () => {
    clearTimeout(idle);
    idle = setTimeout(() => ctl.abort(), STREAM_IDLE_MS);
  };
  try {
    kick();
    const res = await fetch("/v1/events", {
      headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal, cache: "no-store",
    });
    if (res.status === 401) { clearTimeout(idle); needToken(!!token); return; }
    if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      kick();
      buf += value;
      let i;
      while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
        if (gen !== generation) return;
        onFrame(block);
      }
      if (buf.length > 1 << 20) throw new Error("frame too large");
    }
  } catch (_) {
    // aborted, refused or cut: fall through to the fallback
  } finally {
    clearTimeout(idle);
  }
  if (gen !== generation) return;
  streamUp = false;
  startPolling();
  scheduleStream(gen);
}

function onFrame(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line[0] === ":") continue;
    const c = line.indexOf(":");
    const f = c < 0 ? line : line.slice(0, c);
    const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
    if (f === "event") event = v;
    else if (f === "data") data.push(v);
  }
  if (!data.length) return;
  let obj;
  try { obj = JSON.parse(data.join("\n")); } catch (_) { return; }
  if (event === "stats") {
    if (!streamUp) {
      streamUp = true;
      backoff = 1000;
      stopPolling();
      setMode("live", "live stream");
    }
    onStats(obj);
  } else if (event === "order") {
    onOrderEvent(obj);
  }
}

const feed = [];
function onOrderEvent(ev) {
  feed.unshift(ev);
  feed.length = Math.min(feed.length, 14);
  const ol = $("feed");
  ol.replaceChildren(...feed.map((e) => el("li", {},
    el("time", { datetime: e.at || "", text: e.at ? clock(new Date(e.at)) : "" }),
    el("span", { class: "id", title: e.id }, el("span", { class: "ev ev-" + e.event, text: e.event }), " ", e.id),
    el("span", { class: "muted", text: e.replica || "" }))));
}

// ---- lists: alerts, failures, dead notifications ---------------------------

async function loadAlerts() {
  const r = await api("GET", "/v1/alerts");
  renderAlerts(r.alerts || []);
}

function emptyRow(tb, cols, text) {
  tb.replaceChildren(el("tr", {}, el("td", { colspan: cols, class: "muted", text })));
}

// Rebuilds a table body only when its content changed, and puts focus back
// on the same button if it was on one (keyboard users keep their place).
function renderRows(table, key, rows) {
  const tb = $(table).tBodies[0];
  if (tb.dataset.key === key) return;
  const focused = document.activeElement && tb.contains(document.activeElement) ?
    document.activeElement.dataset.key : null;
  tb.dataset.key = key;
  tb.replaceChildren(...rows());
  if (focused) {
    const b = tb.querySelector('[data-key="' + CSS.escape(focused) + '"]');
    if (b) b.focus();
  }
}

async function loadFailures() {
  const r = await api("GET", "/v1/failures?limit=50");
  const f = r.failures || [];
  if (!f.length) { delete $("failures").tBodies[0].dataset.key; emptyRow($("failures").tBodies[0], 5, "No failed orders."); return; }
  renderRows("failures", JSON.stringify(f), () => f.map((g) => el("tr", {},
    el("td", { class: "mono" }, g.fingerprint),
    el("td", { class: "reason" }, g.sample_reason || "–"),
    el("td", { class: "num" }, fmtInt(g.count)),
    el("td", {}, fmtTime(g.last_seen)),
    el("td", { class: "act" }, el("button", {
      type: "button", class: "btn small", "data-key": "rq-" + g.fingerprint,
      "aria-label": "Requeue " + g.count + " orders with fingerprint " + g.fingerprint,
      onclick: (ev) => requeue(g.fingerprint, ev.currentTarget),
    }, "Requeue")))));
}

async function requeue(fp, btn) {
  btn.disabled = true;
  try {
    const r = await api("POST", "/v1/failures/" + encodeURIComponent(fp) + "/requeue");
    announce("Requeued " + r.requeued + " order" + (r.requeued === 1 ? "" : "s") + " of group " + fp + ".");
  } catch (e) {
    if (!(e instanceof AuthError)) announce("Requeue of " + fp + " failed: " + e.message);
  } finally {
    btn.disabled = false;
    loadFailures().catch(() => {});
  }
}

async function loadDead() {
  const r = await api("GET", "/v1/notifications?status=dead&limit=50");
  const n = r.notifications || [];
  const tb = $("dead").tBodies[0];
  if (!n.length) { delete tb.dataset.key; emptyRow(tb, 6, "No dead notifications."); return; }
  renderRows("dead", JSON.stringify(n), () => n.map((x) => el("tr", {},
    el("td", { class: "mono" }, String(x.id)),
    el("td", {}, x.type || "–"),
    el("td", { class: "mono" }, el("button", {
      type: "button", class: "btn ghost small", "data-key": "lk-" + x.id,
      "aria-label": "Look up order " + x.order_id, onclick: () => lookup(x.order_id),
    }, x.order_id)),
    el("td", { class: "num" }, fmtInt(x.attempts)),
    el("td", { class: "reason" }, x.last_error || "–"),
    el("td", { class: "act" }, el("button", {
      type: "button", class: "btn small", "data-key": "rd-" + x.id,
      "aria-label": "Redeliver notification " + x.id,
      onclick: (ev) => redeliver(x.id, ev.currentTarget),
    }, "Redeliver")))));
}

async function redeliver(id, btn) {
  btn.disabled = true;
  try {
    await api("POST", "/v1/notifications/" + encodeURIComponent(id) + "/redeliver");
    announce("Notification " + id + " queued for delivery again.");
  } catch (e) {
    if (!(e instanceof AuthError)) announce("Redeliver of " + id + " failed: " + e.message);
  } finally {
    btn.disabled = false;
    loadDead().catch(() => {});
  }
}

// ---- order lookup ----------------------------------------------------------

function kv(pairs) {
  return el("dl", { class: "kv" }, ...pairs.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", {}, v))));
}

async function lookup(id) {
  $("lookup-id").value = id;
  const out = $("order");
  if (!ID_RE.test(id)) {
    out.replaceChildren(el("p", { class: "msg bad", text: "An order id is 1–64 of A–Z a–z 0–9 . _ : -" }));
    $("lookup-id").setAttribute("aria-invalid", "true");
    return;
  }
  $("lookup-id").removeAttribute("aria-invalid");
  out.replaceChildren(el("p", { class: "muted", text: "Looking up " + id + "…" }));
  const path = "/v1/orders/" + encodeURIComponent(id);
  let o;
  try {
    o = await api("GET", path);
  } catch (e) {
    if (e instanceof AuthError) return;
    out.replaceChildren(el("p", { class: "msg bad", text: e.status === 404 ?
      "No order with id " + id + "." : "Lookup failed: " + e.message }));
    return;
  }
  const items = (o.items || []).map((i) => i.qty + " × " + i.sku).join(", ");
  const parts = [
    el("h3", { class: "h3", text: "Order " + o.id }),
    kv([["Status", el("span", { class: "status-pill st-" + o.status, text: o.status })],
      ["Customer", o.customer], ["Items", items || "–"], ["Attempts", fmtInt(o.attempts)],
      ["Reason", o.reason || "–"], ["Created", fmtTime(o.created_at)],
      ["Updated", fmtTime(o.updated_at)], ["Finished", fmtTime(o.finished_at)]]),
  ];
  let hist = null, histMsg = null;
  try {
    hist = await api("GET", path + "/history");
  } catch (e) {
    if (e instanceof AuthError) return;
    histMsg = "History unavailable: " + e.message;
  }
  if (hist) {
    parts.push(el("h3", { class: "h3", text: "History" }), historyTable(hist.events || []));
    const notes = hist.notifications || [];
    parts.push(el("h3", { class: "h3", text: "Notifications" }), notes.length ? notificationsTable(notes) :
      el("p", { class: "muted", text: "None: the order has not finished, notifications are not configured, or delivered ones were pruned after their retention." }));
    if (hist.truncated) parts.push(el("p", { class: "msg", text: "Only the oldest entries are shown." }));
  } else {
    parts.push(el("p", { class: "msg", text: histMsg }));
  }
  out.replaceChildren(...parts);
}

// A scrollable, labelled table of rows for the lookup: cols are
// [header, row => its <td>] pairs.
function lookupTable(id, label, caption, cols, rows) {
  return el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label }, el("table", { class: "tbl", id },
    el("caption", { class: "sr-only", text: caption }),
    el("thead", {}, el("tr", {}, ...cols.map(([h]) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map(([, cell]) => cell(r)))))));
}

function historyTable(events) {
  return lookupTable("history", "Order history", "The order's events, oldest first", [
    ["At", (e) => el("td", {}, fmtTime(e.at))],
    ["Event", (e) => el("td", {}, el("span", { class: "ev ev-" + e.event, text: e.event }))],
    ["Replica", (e) => el("td", { class: "mono" }, e.replica || "–")],
    ["Fence", (e) => el("td", { class: "num" }, e.fence == null ? "–" : String(e.fence))],
    ["Attempt", (e) => el("td", { class: "num" }, e.attempt == null ? "–" : String(e.attempt))],
    ["Reason", (e) => el("td", { class: "reason" }, e.reason || "–")],
  ], events);
}

function notificationsTable(notes) {
  return lookupTable("order-notifications", "Order notifications", "The order's notifications, oldest first", [
    ["Created", (n) => el("td", {}, fmtTime(n.created_at))],
    ["Type", (n) => el("td", {}, n.type)],
    ["Status", (n) => el("td", {}, el("span", { class: "status-pill st-" + n.status, text: n.status }))],
    ["Attempts", (n) => el("td", { class: "num" }, fmtInt(n.attempts))],
    ["Delivered", (n) => el("td", {}, n.delivered_at ? fmtTime(n.delivered_at) : "–")],
    ["Last error", (n) => el("td", { class: "reason" }, n.last_error || "–")],
  ], notes);
}

// ---- products --------------------------------------------------------------

const pages = [null]; // cursors of the pages seen; [0] is the first
let page = 0;

async function loadProducts() {
  const cur = pages[page];
  const r = await api("GET", "/v1/products?limit=20" + (cur ? "&cursor=" + encodeURIComponent(cur) : ""));
  const ps = r.products || [];
  pages.length = page + 1;
  if (r.next_cursor) pages.push(r.next_cursor);
  $("p-next").disabled = !r.next_cursor;
  $("p-first").disabled = page === 0;
  setText("p-page", "Page " + (page + 1));
  const tb = $("products").tBodies[0];
  if (!ps.length) { delete tb.dataset.key; emptyRow(tb, 4, "No products."); return; }
  renderRows("products", JSON.stringify(ps), () => ps.map((p) => el("tr", {},
    el("td", { class: "mono" }, p.sku),
    el("td", { class: "num" }, fmtInt(p.stock)),
    el("td", {}, fmtTime(p.updated_at)),
    el("td", { class: "act" }, el("button", {
      type: "button", class: "btn ghost small", "data-key": "ed-" + p.sku,
      "aria-label": "Set stock of " + p.sku,
      onclick: () => { $("stock-sku").value = p.sku; $("stock-n").value = p.stock; $("stock-n").focus(); },
    }, "Edit")))));
}

async function setStock(ev) {
  ev.preventDefault();
  const sku = $("stock-sku").value.trim();
  const n = Number($("stock-n").value);
  if (!ID_RE.test(sku)) { $("stock-sku").setAttribute("aria-invalid", "true"); announce("A SKU is 1–64 of A–Z a–z 0–9 . _ : -"); return; }
  $("stock-sku").removeAttribute("aria-invalid");
  if (!Number.isInteger(n) || n < 0 || n > 1e9 || $("stock-n").value === "") {
    $("stock-n").setAttribute("aria-invalid", "true");
    announce("Stock is a whole number from 0 to 1,000,000,000.");
    return;
  }
  $("stock-n").removeAttribute("aria-invalid");
  try {
    const p = await api("PUT", "/v1/products/" + encodeURIComponent(sku), { stock: n });
    announce("Stock of " + p.sku + " set to " + fmtInt(p.stock) + ".");
    loadProducts().catch(() => {});
  } catch (e) {
    if (!(e instanceof AuthError)) announce("Setting stock of " + sku + " failed: " + e.message);
  }
}

// ---- wiring ----------------------------------------------------------------

const loaders = { alerts: loadAlerts, failures: loadFailures, dead: loadDead, products: loadProducts };
let listTimer = 0;

function quiet(p) { return p.catch(() => {}); }

function refreshLists() {
  quiet(loadAlerts());
  quiet(loadFailures());
  quiet(loadDead());
}

function restart() {
  stopStream();
  clearInterval(listTimer);
  const gen = generation;
  backoff = 1000;
  // Stats first: a 401 there brings up the prompt once.
  api("GET", "/v1/stats").then((s) => {
    if (gen !== generation) return;
    onStats(s);
    refreshLists();
    quiet(loadProducts());
    listTimer = setInterval(refreshLists, LISTS_MS);
    startPolling();
    openStream(gen);
  }, (e) => {
    if (!(e instanceof AuthError)) {
      setMode("off", "unreachable");
      startPolling();
      scheduleStream(gen);
    }
  });
}

function init() {
  setupAuth();
  document.querySelectorAll("[data-refresh]").forEach((b) =>
    b.addEventListener("click", () => quiet(loaders[b.dataset.refresh]())));
  $("lookup").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("lookup-id").value.trim()); });
  $("stock").addEventListener("submit", setStock);
  $("p-next").addEventListener("click", () => { if (pages[page + 1]) { page++; quiet(loadProducts()); } });
  $("p-first").addEventListener("click", () => { page = 0; quiet(loadProducts()); });
  window.addEventListener("resize", redraw);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
  setInterval(() => { redraw(); describeCharts(Date.now()); }, 10000);
  // Charts scroll with time even between ticks.
  setInterval(redraw, 1000);
  restart();
}

document.addEventListener("DOMContentLoaded", init);
