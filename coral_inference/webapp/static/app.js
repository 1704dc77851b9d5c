// Coral dashboard: plain JS over /api/v1 — pipelines, live WebRTC preview, recordings, charts, health.
"use strict";

const API = "/api/v1";
const KEY_STORAGE = "coral.apiKey";
const state = { selected: null, pc: null, recordingsAt: 0 };
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, Object.assign({}, options, { headers }));
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : `HTTP ${response.status}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "—" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

// ------------------------------------------------------------------ pipelines

async function loadWorkflows() {
  try {
    const files = await api("workflows");
    const select = $("workflow");
    select.replaceChildren(...files.map((f) => new Option(`${f.path} (${f.steps} steps)`, f.path)));
  } catch (error) { say(`workflows: ${error.message}`, true); }
}

async function startPipeline(event) {
  event.preventDefault();
  const body = { workflow_file: $("workflow").value, source: $("source").value.trim() };
  const maxFps = parseFloat($("max-fps").value);
  if (maxFps > 0) body.max_fps = maxFps;
  $("start").disabled = true;
  say("starting… (the first pipeline loads the workflow engine)");
  try {
    const pipeline = await api("pipelines", { method: "POST", body: JSON.stringify(body) });
    say(`started ${pipeline.id}`);
    await refreshPipelines();
    select(pipeline.id);
  } catch (error) { say(`start failed: ${error.message}`, true); }
  finally { $("start").disabled = false; }
}

async function control(id, action) {
  try {
    if (action === "delete") await api(`pipelines/${id}`, { method: "DELETE" });
    else await api(`pipelines/${id}/${action}`, { method: "POST" });
    if (action === "delete" && state.selected === id) disconnect();
    await refreshPipelines();
  } catch (error) { say(`${action}: ${error.message}`, true); }
}

async function refreshPipelines() {
  const pipelines = await api("pipelines");
  const body = $("pipelines").querySelector("tbody");
  body.replaceChildren(...pipelines.map((p) => {
    const row = document.createElement("tr");
    row.dataset.id = p.id;
    row.dataset.state = p.state;
    if (p.id === state.selected) row.className = "selected";
    cell(row, p.id); cell(row, p.name); cell(row, p.state, "state"); cell(row, p.frames);
    cell(row, p.fps); cell(row, p.inference_latency_ms === null ? null : Math.round(p.inference_latency_ms));
    cell(row, p.detections); cell(row, p.error, "error");
    const actions = document.createElement("td");
    actions.append(button("Preview", () => select(p.id)));
    if (p.state === "running") actions.append(button("Pause", () => control(p.id, "pause")));
    if (p.state === "paused") actions.append(button("Resume", () => control(p.id, "resume")));
    if (["running", "paused", "starting"].includes(p.state)) actions.append(button("Stop", () => control(p.id, "terminate")));
    actions.append(button("Delete", () => control(p.id, "delete")));
    row.appendChild(actions);
    row.addEventListener("click", () => select(p.id));
    return row;
  }));
  // Follow a running pipeline when none is selected or the selected one is gone.
  if (!state.selected || !pipelines.some((p) => p.id === state.selected)) {
    const live = pipelines.find((p) => p.state === "running");
    if (live) select(live.id);
    else if (state.selected) { disconnect(); state.selected = null; }
  }
}

// ------------------------------------------------------------------ live preview (WebRTC)

function disconnect() {
  if (state.pc) state.pc.close();
  state.pc = null;
  $("preview").srcObject = null;
}

function iceGatheringDone(pc, timeoutMs) {
  // aiortc answers complete offers (no trickle ICE): wait for the candidates.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function select(id) {
  if (state.selected === id && state.pc) return;
  state.selected = id;
  $("preview-name").textContent = id;
  for (const row of $("pipelines").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  disconnect();
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    const video = $("preview");
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc, 3000);
    const answer = await api(`pipelines/${id}/webrtc`, {
      method: "POST", body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (state.pc === pc) await pc.setRemoteDescription(answer);
  } catch (error) { say(`preview: ${error.message}`, true); }
  refreshCharts();
}

// ------------------------------------------------------------------ charts

function drawChart(canvas, values, color) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const points = values.filter((v) => typeof v === "number" && isFinite(v));
  canvas.dataset.points = String(points.length);
  if (points.length === 0) return;
  const max = Math.max(...points, 1e-9);
  const min = Math.min(0, ...points);
  const pad = 14;
  ctx.strokeStyle = "#d9dee4";
  ctx.beginPath(); ctx.moveTo(pad, height - pad); ctx.lineTo(width, height - pad); ctx.stroke();
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((v, i) => {
    const x = pad + (points.length === 1 ? 0 : (i / (points.length - 1)) * (width - pad - 2));
    const y = height - pad - ((v - min) / (max - min || 1)) * (height - 2 * pad);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#6b7785";
  ctx.font = "10px sans-serif";
  ctx.fillText(`max ${max.toFixed(1)}  last ${points[points.length - 1].toFixed(1)}`, pad, 10);
}

async function refreshCharts() {
  const history = await api("metrics/history?limit=120");
  drawChart($("chart-cpu"), history.host.map((s) => s.cpu_percent), "#7b1fa2");
  const series = (state.selected && history.pipelines[state.selected]) || [];
  drawChart($("chart-fps"), series.map((s) => s.fps), "#1565c0");
  drawChart($("chart-inference-latency"), series.map((s) => s.inference_latency_ms), "#ef6c00");
  drawChart($("chart-detections"), series.map((s) => s.detections), "#2e7d32");
}

// ------------------------------------------------------------------ recordings

function humanBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function refreshRecordings() {
  const recordings = await api("recordings");
  const body = $("recordings").querySelector("tbody");
  body.replaceChildren(...recordings.slice(0, 200).map((r) => {
    const row = document.createElement("tr");
    const name = cell(row, "");
    const link = document.createElement("a");
    link.className = "recording";
    link.textContent = r.path;
    link.dataset.path = r.path;
    link.addEventListener("click", () => play(r.path));
    name.appendChild(link);
    cell(row, r.duration_s); cell(row, humanBytes(r.size_bytes)); cell(row, new Date(r.modified_at).toLocaleString());
    return row;
  }));
}

function play(path) {
  const player = $("player");
  player.src = `${API}/recordings/${path.split("/").map(encodeURIComponent).join("/")}`;
  player.dataset.path = path;
  player.play().catch(() => {});
}

// ------------------------------------------------------------------ health

async function refreshHealth() {
  const response = await fetch("/readyz");
  const body = await response.json();
  const badge = $("health");
  badge.textContent = body.status;
  badge.className = `badge ${response.ok ? "ok" : "bad"}`;
  $("checks").replaceChildren(...Object.entries(body.checks).map(([name, check]) => {
    const li = document.createElement("li");
    li.className = check.ok ? "ok" : "bad";
    li.textContent = `${name}: ${check.detail}`;
    return li;
  }));
  const host = await api("metrics/host");
  $("host").textContent = `CPU ${host.cpu_percent.toFixed(0)}% · memory ${host.memory_percent.toFixed(0)}% · ` +
    `disk ${host.disk_percent}% (${humanBytes(host.disk_free_bytes)} free)` +
    Object.entries(host.accelerators).map(([k, v]) => ` · ${k} ${v}%`).join("");
}

// ------------------------------------------------------------------ wiring

async function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) { localStorage.removeItem(KEY_STORAGE); say("key cleared"); return; }
  try {
    // The cookie lets <video src> fetch recordings when reads need a key too.
    await api("auth/session", { method: "POST", body: JSON.stringify({ api_key: key }) });
    localStorage.setItem(KEY_STORAGE, key);
    $("api-key").value = "";
    say("key accepted");
    tick();
    loadWorkflows();
  } catch (error) { say(`key refused: ${error.message}`, true); }
}

async function tick() {
  const jobs = [refreshPipelines(), refreshHealth(), refreshCharts()];
  if (Date.now() - state.recordingsAt > 4000) { state.recordingsAt = Date.now(); jobs.push(refreshRecordings()); }
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (failed && failed.reason && failed.reason.status === 401) say("an API key is needed: enter it above", true);
}

$("start-form").addEventListener("submit", startPipeline);
$("key-form").addEventListener("submit", useKey);
// A link like http://box:9100/#key=… (the demo prints one) signs in once; the fragment
// never reaches the server and is removed from the address bar.
const linkedKey = new URLSearchParams(location.hash.slice(1)).get("key");
if (linkedKey) {
  history.replaceState(null, "", location.pathname + location.search);
  $("api-key").value = linkedKey;
  useKey(new Event("submit"));
}
loadWorkflows();
tick();
setInterval(tick, 2000);
