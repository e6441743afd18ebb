// edge fleet console: fetches JSON from /api/*, re-fetches when /stream reports a change.
// Device data is only ever inserted with textContent (never as HTML), and ids reach URLs only as
// encoded query parameters (a path segment cannot carry every id: "..", "/", "?").
"use strict";
const CSRF = document.querySelector('meta[name="csrf"]').content;
const $ = (s) => document.querySelector(s);
const fmt = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "");

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = c instanceof Node ? wrap(c) : el("td", c); tr.appendChild(td); }
  return tr;
}
function wrap(node) { const td = document.createElement("td"); td.appendChild(node); return td; }
function fill(id, rows, empty) {
  const tb = $(`#${id} tbody`); tb.replaceChildren();
  if (!rows.length) { const tr = document.createElement("tr"); const td = el("td", empty, "empty"); td.colSpan = 12; tr.appendChild(td); tb.appendChild(tr); }
  for (const r of rows) tb.appendChild(r);
}
async function get(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  return r.json();
}
async function post(url, body) {
  const r = await fetch(url, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF }, body: JSON.stringify(body || {}) });
  return r.json();
}
const target = (what, device, id) => `${what}?${new URLSearchParams({ device: String(device), id: String(id) })}`;
function toast(text) { const t = $("#toast"); t.textContent = text; t.style.display = "block"; clearTimeout(toast.h); toast.h = setTimeout(() => (t.style.display = "none"), 8000); }

function filterQuery() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) {
    if (!v) continue;
    p.set(k, k === "since" || k === "until" ? v + (v.length === 16 ? ":00" : "") + "Z" : v);
  }
  return p.toString();
}

async function loadDevices() {
  const ds = await get("/api/devices");
  fill("devices", ds.map((d) => row([
    d.device, el("span", d.status, d.status === "online" ? "ok" : d.status === "offline" ? "bad" : "muted"),
    d.ago === null ? "" : `${d.ago} s ago`, d.cameras ? `${d.cameras_up}/${d.cameras}` : "–",
    d.outbox === null || d.outbox === undefined ? "–" : `${d.outbox} (${d.outbox_age || 0} s)`,
    d.open ? `${d.open.visits} / ${d.open.anomalies}` : "–",
  ])), "no device yet");
}
async function loadAnomalies() {
  const as = await get("/api/anomalies?open=1");
  fill("anomalies", as.map((a) => {
    const acts = el("span");
    for (const act of ["ack", "resolve"]) {
      if (act === "ack" && a.state === "acked") continue;
      const b = el("button", act === "ack" ? "Acknowledge" : "Resolve", act === "resolve" ? "primary" : "");
      b.dataset.anomaly = a.id; b.dataset.action = act;
      b.onclick = () => act_(a, act);
      acts.appendChild(b); acts.appendChild(document.createTextNode(" "));
    }
    return row([fmt(a.raised), a.device, a.rule, el("span", a.severity, `sev-${a.severity}`), a.state, a.reason, acts]);
  }), "no open anomaly");
}
async function act_(a, action) {
  const r = await post(target(`/api/anomalies/${action}`, a.device, a.id));
  if (r.error) return toast(`refused: ${r.error}`);
  toast(`${action} sent to ${r.device}; waiting for its reply…`);
  waitReply(r.id);
}
async function loadVisits() {
  const q = filterQuery();
  $("#csv").href = "/export/visits.csv?" + q; $("#json").href = "/export/visits.json?" + q;
  const vs = await get("/api/visits?" + q);
  fill("visits", vs.map((v) => {
    const snap = v.snapshot ? (() => { const i = el("img", null, "snap"); i.src = `/snapshot/${encodeURIComponent(v.snapshot)}.jpg`; i.alt = "snapshot"; return i; })() : el("span", "–", "muted");
    const b = el("button", "Report incorrect type/plate"); b.dataset.visit = v.id; b.onclick = () => feedback(v);
    const cam = (c) => String(c).split("/").pop(); // fleet-engine cameras are "device/camera"
    // origin: whose rule engine made the row shown; "+ ..." the other engines that saw the same visit
    const kinds = [v.origin_kind, ...(v.also || []).map((o) => (o === v.device ? "device" : "fleet"))];
    const origin = el("span", [...new Set(kinds)].join(" + "), `origin-${v.origin_kind}`);
    origin.title = [v.origin, ...(v.also || [])].join(", ");
    return row([v.entry_camera ? `${v.device}: ${cam(v.entry_camera)}` : v.device, v.road_in || "", fmt(v.time_in),
      v.exit_camera ? `${v.exit_device}: ${cam(v.exit_camera)}` : "", v.road_out || "", fmt(v.time_out),
      v.vtype || "", v.plate || "", v.status, origin, snap, b]);
  }), "no visit matches");
}
async function loadCommands() {
  const cs = await get("/api/commands");
  fill("commands", cs.map((c) => {
    const b = c.body; const what = b.cmd === "feedback" ? `feedback ${b.field} = ${b.value}` : `${b.cmd} ${String(b.anomaly ?? "").slice(0, 8)}`;
    const rep = c.reply ? el("span", replyText(c.reply), c.reply.ok ? "ok" : "bad") : el("span", "waiting…", "muted");
    if (c.reply) rep.title = JSON.stringify(c.reply);
    return row([fmt(c.sent), c.user, c.device, what, rep]);
  }), "no action yet");
}
function feedback(v) {
  const d = $("#fb");
  $("#fb-what").textContent = "type/plate"; $("#fb-visit").textContent = `visit ${v.id.slice(0, 8)}: ${v.vtype || "?"} ${v.plate || ""} at ${v.device}`;
  $("#fb-value").value = "";
  d.onclose = async () => {
    if (d.returnValue !== "ok") return;
    const r = await post(target("/api/visits/feedback", v.device, v.id), { field: $("#fb-field").value, value: $("#fb-value").value });
    if (r.error) return toast(`refused: ${r.error}`);
    toast(`correction sent to ${r.device}; waiting for its reply…`);
    waitReply(r.id);
  };
  d.returnValue = ""; d.showModal();
}
function replyText(r) {
  if (!r.ok) return `refused: ${r.error}`;
  if (r.cmd === "feedback") return `ok: ${r.field} ${r.old ?? "?"} → ${r.new} (stored for training)`;
  return `ok: ${r.cmd} done (${r.events} event${r.events === 1 ? "" : "s"})`;
}
const pending = new Set();
function waitReply(id) { pending.add(id); loadCommands(); }
async function checkReplies() {
  if (!pending.size) return;
  const cs = await get("/api/commands");
  for (const c of cs) if (pending.has(c.id) && c.reply) {
    pending.delete(c.id);
    toast(`${c.device} replied ${replyText(c.reply)}`);
  }
}
async function refresh() {
  await Promise.all([loadDevices(), loadAnomalies(), loadVisits(), loadCommands(), checkReplies()]);
}
$("#filters").onsubmit = (e) => { e.preventDefault(); loadVisits(); };
const es = new EventSource("/stream");
es.addEventListener("summary", (e) => {
  const s = JSON.parse(e.data);
  $("#n-events").textContent = s.events; $("#n-visits").textContent = s.visits; $("#n-open").textContent = s.open_anomalies;
  refresh();
});
es.onopen = () => { $("#live").textContent = "live"; $("#live").className = "pill on"; };
es.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").className = "pill"; };
refresh();
