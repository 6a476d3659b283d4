// The chat page of `pilotfish serve`: plain DOM code, no build step, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "pilotfish.key", PIPELINE = "pilotfish.pipeline";
const state = { session: null, busy: false, opener: null };

// el("button", {class: "x", onclick: f}, "text", child...): attributes are set, never parsed as HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false && c !== "") node.append(c);
  return node;
}

// ---- requests -------------------------------------------------------------------------------
function headers(extra = {}) {
  const key = localStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try { message = (await res.json()).error?.message || message; } catch { /* not JSON */ }
  if (res.status === 401) message = `This server needs an API key: paste yours in the "API key" field at the top. (${message})`;
  if (res.status === 429) message = `Busy, retry in ${res.headers.get("Retry-After") || "a few"} s. (${message})`;
  return Object.assign(new Error(message), { status: res.status });
}

async function api(path, { method = "GET", body, form } = {}) {
  const res = await fetch(path, {
    method, headers: headers(body ? { "Content-Type": "application/json" } : {}),
    body: form || (body ? JSON.stringify(body) : undefined),
  });
  if (!res.ok) throw await failure(res);
  return res.json();
}

// Server-sent events from a fetch() body (EventSource cannot POST).
async function* events(res) {
  const reader = res.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer = (buffer + decoder.decode(value || new Uint8Array(), { stream: !done })).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
    if (done) return;
  }
}

function notify(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

function showError(err) {
  notify(err.message);
  if (err.status === 401) $("api-key").focus();
}

// ---- the conversation -------------------------------------------------------------------------
function scrollDown() { $("log").scrollTop = $("log").scrollHeight; }

function addUser(text) {
  $("empty").hidden = true;
  const node = el("article", { class: "turn user" }, el("h3", { class: "visually-hidden", text: "You asked" }),
    el("p", { text }));
  $("log").append(node);
  scrollDown();
  return node;
}

function addAssistant() {
  const text = el("div", { class: "answer-text", "aria-live": "polite", "aria-busy": "true" },
    el("span", { class: "muted", text: "Searching the documents…" }));
  const node = el("article", { class: "turn assistant" }, el("h3", { class: "visually-hidden", text: "Answer" }), text);
  $("log").append(node);
  scrollDown();
  return { node, text };
}

// The answer's text with each [n] (or [n, m]) marker as a chip that opens its passage.
function withChips(text, evidence, data) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(/\[(\d+(?:\s*,\s*\d+)*)\]/g)) {
    parts.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    for (const n of m[1].split(",").map(Number)) parts.push(chip(n, evidence.find((e) => e.n === n), data));
  }
  parts.push(text.slice(last));
  return parts;
}

function chip(n, passage, data) {
  if (!passage) return el("span", { class: "chip unknown", title: "this number matches no passage" }, String(n));
  const flagged = passage.flagged?.length > 0;
  const label = `Passage ${n}: ${passage.title || passage.doc_id}${flagged ? " (flagged: reads like instructions)" : ""}`;
  return el("button", { type: "button", class: flagged ? "chip flagged" : "chip", "aria-label": label, title: label,
    onclick: (e) => openPassage(passage, e.currentTarget, data) }, String(n));
}

function renderAnswer(turn, data, question) {
  const pf = data.pilotfish || {};
  const evidence = pf.evidence || data.stored || [];
  turn.text.replaceChildren(...withChips(data.answer || "", evidence, data));
  turn.text.setAttribute("aria-busy", "false");
  turn.node.classList.toggle("abstained", data.answered === false);
  const flagged = evidence.filter((e) => e.flagged?.length);
  if (flagged.length) {
    const signs = [...new Set(flagged.flatMap((e) => e.flagged))].join(", ");
    turn.node.append(el("p", { class: "warning" }, `⚠ Passage ${flagged.map((e) => `[${e.n}]`).join(" ")} reads ` +
      `like instructions to the model (possible prompt injection: ${signs}). It was given to the model as data only.`));
  }
  const verdict = data.verification || pf.verification;
  if (verdict) turn.node.append(verification(verdict));
  const sql = data.sql ?? pf.sql;
  if (sql) turn.node.append(el("details", { class: "sql" }, el("summary", { text: "SQL and rows" }), tableResult(sql, data.rows ?? pf.rows)));
  turn.node.append(metaLine(data), feedback(data, question));
}

function verification(v) {
  const claims = v.claims || [];
  const head = `Checked against the evidence: ${v.label}${v.did ? ` (${v.did})` : ""}`;
  if (!claims.length) return el("p", { class: "meta", text: head });
  return el("div", { class: "verification" }, el("p", { class: "meta", text: head }),
    el("ul", { class: "claims" }, claims.map((c) => el("li", {},
      el("span", { class: `badge ${c.label === "supported" ? "supported" : "unsupported"}` },
        c.label === "supported" ? "✓ supported" : `✗ ${c.label}`), " ", el("span", { text: c.claim })))));
}

function tableResult(sql, rows) {
  const body = (rows || []).slice(0, 50).map((r) => el("tr", {}, r.map((v) => el("td", { text: v === null ? "NULL" : String(v) }))));
  return el("div", { class: "table-result" }, el("pre", { class: "sql-text", text: sql }),
    body.length ? el("div", { class: "scroll" }, el("table", {}, el("tbody", {}, body))) : el("p", { class: "meta", text: "No rows." }),
    (rows || []).length > 50 ? el("p", { class: "meta", text: `First 50 of ${rows.length} rows.` }) : null);
}

function metaLine(data) {
  const u = data.usage || {};
  const seconds = data.seconds ?? u.seconds, model = data.model || data.pilotfish?.model;
  const parts = [seconds == null ? null : `${Number(seconds).toFixed(2)} s`,
    `${u.prompt_tokens || 0} prompt + ${u.completion_tokens || 0} completion tokens`, `$${Number(u.cost || 0).toFixed(4)}`,
    model && `model ${model}`, data.pipeline && `pipeline ${data.pipeline}`];
  return el("p", { class: "meta cost", text: parts.filter(Boolean).join(" · ") });
}

let feedbackCount = 0;
function feedback(data, question) {
  const id = `fb${++feedbackCount}`;
  const status = el("span", { class: "saved", role: "status" });
  const correction = el("textarea", { id: `${id}-correction`, rows: 2 });
  const comment = el("textarea", { id: `${id}-comment`, rows: 2 });
  let rating = 0;
  const send = async (chosen) => {
    if (chosen !== undefined) rating = chosen;
    const body = data.message_id !== null && data.message_id !== undefined ? { message_id: data.message_id }
      : { question, answer: data.answer, evidence: (data.pilotfish?.evidence || []).map((e) => e.chunk_id),
          pipeline: data.pipeline };
    Object.assign(body, { rating, correction: correction.value.trim() || null, comment: comment.value.trim() || null });
    status.textContent = "Saving…";
    try {
      const saved = await api("/api/feedback", { method: "POST", body });
      status.textContent = `Feedback saved (#${saved.id}).`;
      up.setAttribute("aria-pressed", String(rating === 1));
      down.setAttribute("aria-pressed", String(rating === -1));
    } catch (err) {
      status.textContent = `Not saved: ${err.message}`;
    }
  };
  const up = el("button", { type: "button", class: "thumb", "aria-pressed": "false", "aria-label": "Thumbs up: a good answer",
    onclick: () => send(1) }, "▲ Good");
  const down = el("button", { type: "button", class: "thumb", "aria-pressed": "false", "aria-label": "Thumbs down: a bad answer",
    onclick: () => send(-1) }, "▼ Bad");
  const form = el("form", { class: "correction", onsubmit: (e) => { e.preventDefault(); send(); } },
    el("label", { for: correction.id, text: "Correct answer (optional)" }), correction,
    el("label", { for: comment.id, text: "Comment (optional)" }), comment,
    el("button", { type: "submit", text: "Send feedback" }));
  return el("div", { class: "feedback" }, up, down,
    el("details", {}, el("summary", { text: "Correct or comment" }), form), status);
}

// ---- the passage panel --------------------------------------------------------------------------
function openPassage(p, from, data) {
  const isTable = (p.doc_id || "").startsWith("table:");
  const row = (name, value, full) => (value === undefined || value === null || value === "" ? null
    : [el("dt", { text: name }), el("dd", { text: String(value), title: full })]);
  // A long server path ending in the document id is shown as ".../DOC_ID" (whole on hover).
  const source = p.source && p.doc_id && p.source.length > p.doc_id.length && p.source.endsWith(p.doc_id)
    ? `…/${p.doc_id}` : p.source;
  $("panel-title").textContent = `Passage [${p.n}]`;
  $("panel-body").replaceChildren(el("div", {},
    el("h3", { text: p.title || p.doc_id || p.chunk_id }),
    p.flagged?.length ? el("p", { class: "warning", text: `⚠ This passage reads like instructions to the model ` +
      `(${p.flagged.join(", ")}): possible prompt injection. It was given to the model as data only.` }) : null,
    el("dl", {}, row("Source", source, p.source), row("Collection", p.collection), row("Document", p.doc_id),
      row("Chunk", p.chunk_id), row("Score", p.score)),
    p.text ? el(isTable ? "pre" : "blockquote", { class: "passage", text: p.text })
      : el("p", { class: "meta", text: "A stored conversation keeps which passages were cited, not their text: ask again to read it." }),
    isTable && (data?.sql ?? data?.pilotfish?.sql) ? tableResult(data.sql ?? data.pilotfish.sql, data.rows ?? data.pilotfish?.rows) : null));
  state.opener?.classList.remove("open");
  (state.opener = from).classList.add("open");
  $("panel").hidden = false;
  document.body.classList.add("panel-open");
  $("panel-title").focus();
}

function closePanel() {
  if ($("panel").hidden) return;
  $("panel").hidden = true;
  state.opener?.classList.remove("open");
  document.body.classList.remove("panel-open");
  state.opener?.focus();
}

// ---- asking ---------------------------------------------------------------------------------
async function ask(question) {
  if (state.busy) return;
  state.busy = true;
  $("send").disabled = true;
  notify("");
  let user = null, turn = null, final = null, streamed = "";
  try {
    if (state.session === null) {
      const made = await api("/api/sessions", { method: "POST", body: { title: question.slice(0, 80) } });
      state.session = made.id;
    }
    user = addUser(question);
    turn = addAssistant();
    const res = await fetch("/api/ask", { method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ question, pipeline: $("pipeline").value || null, session_id: state.session, stream: true }) });
    if (!res.ok) throw await failure(res);
    for await (const { event, data } of events(res)) {
      if (event === "token") {
        streamed += data.text;
        turn.text.textContent = streamed;
        scrollDown();
      } else if (event === "answer") {
        renderAnswer(turn, (final = data), question);
        scrollDown();
      } else if (event === "error") {
        throw new Error(data.error?.message || "the answer failed");
      }
    }
    // A streamed answer may come before the server has stored it: take the stored turn's id for feedback.
    if (final && final.message_id == null) {
      const got = await api(`/api/sessions/${state.session}`).catch(() => ({ messages: [] }));
      const stored = got.messages.filter((m) => m.role === "assistant").pop();
      if (stored && stored.content === final.answer) final.message_id = stored.id;
    }
  } catch (err) {
    if (turn && streamed) {
      turn.text.setAttribute("aria-busy", "false");
      turn.node.append(el("p", { class: "warning", text: `The answer stopped: ${err.message}` }));
    } else {
      user?.remove();
      turn?.node.remove();
      $("empty").hidden = $("log").querySelector(".turn") !== null;
      if (!$("question").value) $("question").value = question;
    }
    showError(err);
  } finally {
    state.busy = false;
    $("send").disabled = false;
    loadSessions();
  }
}

// ---- conversations ---------------------------------------------------------------------------
async function loadSessions() {
  try {
    const { sessions } = await api("/api/sessions");
    $("session-list").replaceChildren(...sessions.map((s) => el("li", {},
      el("button", { type: "button", class: "session", "aria-current": s.id === state.session ? "true" : null,
        onclick: () => openSession(s.id) },
        el("span", { class: "title", text: s.title }),
        el("span", { class: "meta", text: `${s.turns} question${s.turns === 1 ? "" : "s"} · ${s.created_at.replace("T", " ")}` })))));
  } catch (err) {
    showError(err);
  }
}

function clearLog(title) {
  $("log").querySelectorAll(".turn").forEach((n) => n.remove());
  $("empty").hidden = false;
  $("session-title").textContent = title;
  notify("");
  closePanel();
}

function collapseSessions() {
  $("sessions").classList.remove("open");
  $("toggle-sessions").setAttribute("aria-expanded", "false");
}

async function openSession(id) {
  try {
    const data = await api(`/api/sessions/${id}`);
    state.session = id;
    clearLog(data.title);
    let question = "";
    for (const m of data.messages) {
      if (m.role === "user") {
        question = m.content;
        addUser(m.content);
      } else if (m.role === "assistant") {
        const meta = m.meta || {};
        const stored = (meta.evidence || []).map((chunk, i) => ({ n: i + 1, chunk_id: chunk, doc_id: chunk.split("::")[0] }));
        renderAnswer(addAssistant(), { answer: m.content, answered: meta.answered, model: meta.model, usage: meta.usage,
          pipeline: meta.pipeline, message_id: m.id, stored }, question);
      }
    }
    collapseSessions();
    loadSessions();
    $("question").focus();
  } catch (err) {
    showError(err);
  }
}

// ---- settings and upload -----------------------------------------------------------------------
async function loadModels() {
  try {
    const { data } = await api("/v1/models");
    const saved = localStorage.getItem(PIPELINE);
    $("pipeline").replaceChildren(...data.map((m) => el("option", { value: m.id, title: m.description || null,
      selected: m.id === saved }, m.id)));
  } catch (err) {
    showError(err);
  }
}

async function upload(e) {
  e.preventDefault();
  const report = $("upload-report"), form = new FormData();
  for (const f of $("upload-files").files) form.append("files", f);
  form.append("collection", $("upload-collection").value.trim());
  report.textContent = "Uploading and ingesting…";
  try {
    const r = await api("/api/documents", { method: "POST", form });
    const x = r.report;
    report.textContent = [`Ingested ${r.files.join(", ")} into "${r.collection}" in ${Number(x.seconds).toFixed(1)} s:`,
      `${x.files_new} new, ${x.files_changed} changed, ${x.files_skipped} unchanged files;`,
      `${x.documents} documents, ${x.chunks} chunks, ${x.tables} tables.`,
      ...(x.failed || []).map(([file, why]) => `Failed: ${file}: ${why}`),
      ...(x.notes || []).map(([file, note]) => `Note: ${file}: ${note}`),
      `The knowledge base now holds ${x.total_documents} documents.`].join("\n");
  } catch (err) {
    report.textContent = err.status === 403 ? `Refused (403): ${err.message}` : err.message;
  }
}

function saveKey() {
  const key = $("api-key").value.trim();
  if (key === (localStorage.getItem(KEY) || "")) return;
  if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
  notify("");
  loadModels();
  loadSessions();
}

function start() {
  $("api-key").value = localStorage.getItem(KEY) || "";
  $("api-key").addEventListener("change", saveKey);
  $("settings").addEventListener("submit", (e) => { e.preventDefault(); saveKey(); });
  $("pipeline").addEventListener("change", () => localStorage.setItem(PIPELINE, $("pipeline").value));
  $("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (!question || state.busy) return;
    $("question").value = "";
    ask(question);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("new-session").addEventListener("click", () => {  // the session is created with the first question as title
    state.session = null;
    clearLog("New conversation");
    collapseSessions();
    loadSessions();
    $("question").focus();
  });
  $("toggle-sessions").addEventListener("click", () => {
    const open = $("sessions").classList.toggle("open");
    $("toggle-sessions").setAttribute("aria-expanded", String(open));
  });
  $("panel-close").addEventListener("click", closePanel);
  $("panel").addEventListener("keydown", (e) => { if (e.key === "Escape") closePanel(); });
  $("upload-form").addEventListener("submit", upload);
  loadModels();
  loadSessions();
}

document.addEventListener("DOMContentLoaded", start);
