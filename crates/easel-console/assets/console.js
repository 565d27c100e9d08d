// The console's behaviour: draw the picture the server sends (server-sent events, with a
// plain fetch as a fallback), and send the operator's actions as same-origin POSTs with
// the console's header. Every piece of job data is put into the page as text, never as
// markup, so a prompt can never become code.
"use strict";

const $ = (sel) => document.querySelector(sel);
let session = { logged_in: false, actions_enabled: false };
let picture = null;
const drawn = {};

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const num = (v, unit) => (v === null || v === undefined ? "–" : `${v}${unit || ""}`);
function ago(unix) {
  if (!unix || !picture) return "–";
  const s = Math.max(0, picture.at - unix);
  return `${span(s)} ago`;
}
function span(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
const short = (id) => (id && id.length > 14 ? `${id.slice(0, 12)}…` : id || "(no id)");

function say(text, good) {
  const m = $("#message");
  m.textContent = text;
  m.className = good ? "good" : "bad";
}

async function post(url, body) {
  let r;
  try {
    r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-easel-console": "1" },
      body: JSON.stringify(body || {}),
    });
  } catch (e) {
    return { ok: false, message: `the console did not answer (${e})` };
  }
  let j = {};
  try { j = await r.json(); } catch (_) { /* not JSON */ }
  return { ok: r.ok && j.ok !== false, message: j.message || `${r.status} ${r.statusText}` };
}

async function act(label, url, body) {
  const r = await post(url, body);
  say(r.ok ? `${label}: ${r.message}` : `${label} refused: ${r.message}`, r.ok);
  if (r.ok) refresh();
}

function actionButton(label, action, id, url) {
  const b = el("button", { type: "button", text: label, "data-action": action, "data-id": id, "data-key": `${action}:${id}` });
  b.addEventListener("click", () => act(`${label} ${short(id)}`, url));
  return b;
}

function detailButton(id) {
  const b = el("button", { type: "button", class: "id", text: short(id), title: id, "data-action": "detail", "data-id": id, "data-key": `detail:${id}` });
  b.addEventListener("click", () => openDetail(id));
  return b;
}

// Rebuilds a section only when its data changed, keeping keyboard focus where it was.
function redraw(name, data, draw) {
  const text = JSON.stringify(data);
  if (drawn[name] === text) return;
  drawn[name] = text;
  const focused = document.activeElement && document.activeElement.getAttribute("data-key");
  draw();
  if (focused) {
    const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function rows(tableSel, items, columns, emptyText) {
  const body = $(`${tableSel} tbody`);
  body.replaceChildren();
  if (!items.length) {
    body.append(el("tr", {}, el("td", { class: "empty", colSpan: 12, text: emptyText })));
    return;
  }
  for (const item of items) {
    const tr = el("tr", { "data-id": item.id || item.name });
    for (const c of columns(item)) tr.append(c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c));
    body.append(tr);
  }
}

const stateCell = (text, kind) => el("td", {}, el("span", { class: `state ${kind || ""}`, text }));

// Local storage: served by the console; remote storage: the links the server signed.
function imageUrl(key, job) {
  if (!key || !picture) return null;
  if (picture.files) return picture.files.base + key.split("/").map(encodeURIComponent).join("/");
  return (job && job.links && job.links[key]) || null;
}

function draw(p) {
  picture = p;
  $("#title").textContent = `— ${p.title}`;
  document.title = `Easel console — ${p.title}`;
  const d = p.queue.depth || {};
  const n = p.numbers || {};
  redraw("numbers", [n, d], () => {
    const card = (label, value, id) => el("div", { "data-number": id }, el("dt", { text: label }), el("dd", { text: value }));
    $("#numbers").replaceChildren(
      card("Jobs / min (5 min)", num(n.jobs_per_min), "jobs_per_min"),
      card("Failed (1 h)", num(n.failed_last_hour), "failed"),
      card("p50 duration", num(n.p50_s, " s"), "p50"),
      card("p95 duration", num(n.p95_s, " s"), "p95"),
      card("Queued", num(d.queued), "queued"),
      card("Running", num(d.running), "running"),
      card("Dead letters", num(d.dead), "dead"),
    );
  });
  $("#errors").textContent = (p.errors || []).join("; ");
  redraw("workers", p.workers, () => rows("#workers", p.workers, (w) => [
    w.name,
    stateCell(w.state, w.state === "running" ? "good" : (["fatal", "backoff", "preflight_failed", "stopped"].includes(w.state) ? "bad" : "")),
    w.ready ? "yes" : "no",
    num(w.pid), span(w.uptime_s), String(w.restarts), w.last_exit || "–", w.reason || "–",
    actionButton("Restart", "restart", w.name, `/console/api/workers/${encodeURIComponent(w.name)}/restart`),
  ], "no workers"));
  redraw("running", p.running, () => rows("#running", p.running, (j) => {
    const pr = j.progress;
    const bar = pr && pr.total > 0
      ? el("span", {}, el("progress", { max: pr.total, value: pr.step, "aria-label": `step ${pr.step} of ${pr.total}` }), ` ${pr.phase} ${pr.step}/${pr.total}`)
      : (pr ? pr.phase : "starting");
    return [detailButton(j.id), j.job_type || "–", el("span", { class: "prompt", text: j.prompt || "–" }), j.worker || "–",
      el("td", { "data-progress": pr ? `${pr.step}/${pr.total}` : "" }, bar), ago(j.since), String(j.attempts),
      actionButton("Cancel", "cancel", j.id, `/console/api/jobs/${encodeURIComponent(j.id)}/cancel`)];
  }, "nothing is running"));
  redraw("queued", p.queued, () => rows("#queued", p.queued, (j) => [
    detailButton(j.id), j.job_type || "–", j.user_id || "–", ago(j.since),
    actionButton("Cancel", "cancel", j.id, `/console/api/jobs/${encodeURIComponent(j.id)}/cancel`),
  ], "the queue is empty"));
  redraw("dead", p.dead, () => rows("#dead", p.dead, (j) => [
    j.id ? detailButton(j.id) : "(unreadable)", j.job_type || "–", j.dead_reason || "–", String(j.attempts), ago(j.since),
    j.id ? actionButton("Retry", "retry", j.id, `/console/api/jobs/${encodeURIComponent(j.id)}/retry`) : "",
  ], "no dead letters"));
  redraw("recent", [p.recent, p.files], () => {
    const list = $("#recent");
    list.replaceChildren();
    if (!p.recent.length) list.append(el("li", { class: "empty", text: "no finished jobs yet" }));
    for (const j of p.recent) {
      const thumb = imageUrl((j.thumbnails || [])[0], j) || imageUrl((j.images || [])[0], j);
      const full = imageUrl((j.images || [])[0], j);
      const picture = thumb
        ? el("a", { href: full || thumb, target: "_blank", rel: "noopener" }, el("img", { src: thumb, alt: `image of job ${j.id}: ${j.prompt || ""}`, loading: "lazy" }))
        : el("div", { class: "noimg", text: j.status === "completed" ? "image stored remotely" : "no image" });
      const good = j.status === "completed";
      const size = j.width && j.height ? `${j.width}×${j.height}` : "–";
      list.append(el("li", { "data-id": j.id, "data-status": j.status || "" },
        picture,
        el("p", {}, el("span", { class: `state ${good ? "good" : "bad"}`, text: j.status === "failed" && j.error_type ? `failed (${j.error_type})` : (j.status || "done") }), " ", detailButton(j.id)),
        el("p", { class: "prompt", text: j.prompt || "(no prompt)" }),
        el("p", { text: `${j.job_type || "–"} · seed ${num(j.seed)} · ${size} · ${num(j.steps)} steps` }),
        el("p", { text: `took ${num(j.duration_s ?? j.generation_time_s, " s")} · waited ${num(j.queue_wait_s, " s")} · ${j.attempts} attempt(s) · ${ago(j.since)}` }),
        j.error ? el("p", { class: "errors", text: j.error }) : null,
      ));
    }
  });
}

async function openDetail(id) {
  const dialog = $("#detail");
  $("#detail-title").textContent = `Job ${id}`;
  const body = $("#detail-body");
  body.replaceChildren(el("p", { text: "loading…" }));
  if (!dialog.open) dialog.showModal();
  let j;
  try {
    const r = await fetch(`/console/api/jobs/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    j = await r.json();
  } catch (e) {
    body.replaceChildren(el("p", { class: "errors", text: `could not load the job: ${e}` }));
    return;
  }
  if (!j.ok) { body.replaceChildren(el("p", { class: "errors", text: j.message })); return; }
  const history = el("ol", {}, ...j.history.map((e) => el("li", { text: `${e.state} ${ago(e.at)}${e.by ? ` by ${e.by}` : ""}` })));
  const images = ((j.outcome && j.outcome.assets) || []).map((a) => imageUrl(a.url, j)).filter(Boolean);
  const cb = j.callback;
  body.replaceChildren(
    el("p", { text: `state ${j.state} · ${j.job_type || "–"} · ${j.attempts} attempt(s)${j.worker ? ` · on ${j.worker}` : ""}${j.dead_reason ? ` · dead: ${j.dead_reason}` : ""}` }),
    el("h3", { text: "History" }), history,
    cb ? el("p", { text: `callback: ${cb.attempts} attempt(s)${cb.delivered_at ? `, delivered ${ago(cb.delivered_at)}` : ""}${cb.given_up_at ? ", given up" : ""}${cb.last_error ? `, last error: ${cb.last_error}` : ""}` }) : null,
    images.length ? el("p", {}, ...images.map((u, i) => el("a", { href: u, target: "_blank", rel: "noopener", text: `image ${i} ` }))) : null,
    el("h3", { text: "Payload (secrets masked)" }), el("pre", { text: j.payload || "–" }),
    el("h3", { text: "Outcome" }), el("pre", { text: j.outcome ? JSON.stringify(j.outcome, null, 2) : "none yet" }),
  );
}

function drawSession() {
  $("#login").hidden = session.logged_in || !session.actions_enabled;
  $("#session").hidden = !session.logged_in && session.actions_enabled;
  $("#session-text").textContent = session.logged_in ? "Logged in: actions enabled" : "Actions disabled (no EASEL_ADMIN_TOKEN)";
  $("#logout").hidden = !session.logged_in;
  document.body.dataset.session = session.logged_in ? "admin" : "read-only";
}

async function loadSession() {
  try {
    const r = await fetch("/console/api/session", { credentials: "same-origin" });
    session = await r.json();
  } catch (_) { /* keep the last one */ }
  drawSession();
}

async function refresh() {
  try {
    const r = await fetch("/console/api/state", { credentials: "same-origin" });
    draw(await r.json());
  } catch (_) { /* the stream will catch up */ }
}

function listen() {
  const live = $("#live");
  const source = new EventSource("/console/api/events");
  source.addEventListener("open", () => { live.textContent = "live"; live.className = ""; });
  source.addEventListener("state", (e) => { live.textContent = "live"; live.className = ""; draw(JSON.parse(e.data)); });
  source.addEventListener("error", () => { live.textContent = "connection lost: reconnecting…"; live.className = "down"; });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#token");
    const r = await post("/console/api/login", { token: input.value });
    input.value = "";
    say(r.ok ? "Logged in: actions enabled" : `Login refused: ${r.message}`, r.ok);
    await loadSession();
  });
  $("#logout").addEventListener("click", async () => {
    const r = await post("/console/api/logout");
    say(r.ok ? "Logged out: read-only" : r.message, r.ok);
    await loadSession();
  });
  $("#purge").addEventListener("click", () => {
    if (window.confirm("Purge every dead letter? They cannot be retried afterwards.")) act("Purge", "/console/api/dead/purge");
  });
  loadSession();
  refresh();
  listen();
});
