// caselink search page. Plain DOM, no framework, no build step.
// Record text only ever reaches the page through textContent / text nodes, never innerHTML.
"use strict";

const KEY_STORE = "caselink.apiKey";
const KIND_LABEL = { case: "case", problem: "problem", sop: "SOP" };
const GROUPS = [["cases", "Service cases"], ["problems", "Problem orders"], ["sops", "SOP sections"]];

const $ = (sel) => document.querySelector(sel);
const state = { query: "", relatedTo: null };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// ---- API -------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.field = problem && problem.field;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// ---- highlighting ----------------------------------------------------------------------------
// Appends `text` to `parent`, wrapping occurrences of `terms` in <mark>. Longest terms win overlaps.
function appendHighlighted(parent, text, terms) {
  text = text || "";
  const lower = text.toLowerCase();
  const sameLength = lower.length === text.length;
  const taken = new Array(text.length).fill(false);
  const ranges = [];
  const sorted = [...new Set(terms || [])].filter((t) => t && t.trim()).sort((a, b) => b.length - a.length);
  for (const term of sorted) {
    const hay = sameLength ? lower : text;
    const needle = sameLength ? term.toLowerCase() : term;
    for (let pos = hay.indexOf(needle); pos >= 0; pos = hay.indexOf(needle, pos + needle.length)) {
      let free = true;
      for (let i = pos; i < pos + needle.length; i++) if (taken[i]) { free = false; break; }
      if (!free) continue;
      for (let i = pos; i < pos + needle.length; i++) taken[i] = true;
      ranges.push([pos, pos + needle.length]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [start, end] of ranges) {
    if (start > at) parent.appendChild(document.createTextNode(text.slice(at, start)));
    parent.appendChild(el("mark", "hl", text.slice(start, end)));
    at = end;
  }
  if (at < text.length) parent.appendChild(document.createTextNode(text.slice(at)));
}

// ---- rendering -------------------------------------------------------------------------------
function renderResult(r, feedbackFor) {
  const node = $("#result-tpl").content.firstElementChild.cloneNode(true);
  node.dataset.id = r.id;
  node.classList.add(`kind-${r.kind}`);
  const badge = node.querySelector(".badge");
  badge.textContent = KIND_LABEL[r.kind] || r.kind;
  badge.classList.add(`badge-${r.kind}`);
  // SOP sections: the section heading is the title; its document is shown on the line below.
  const isSection = r.kind === "sop" && r.section && (r.doc_title || r.doc_id);
  appendHighlighted(node.querySelector(".title"), isSection ? r.section : r.title || r.id, r.highlights);
  const score = node.querySelector(".score");
  score.textContent = Number(r.score).toFixed(2);
  const meter = el("span", "meter");
  const bar = el("span", "bar");
  bar.style.width = `${Math.round(Math.max(0, Math.min(1, r.score)) * 100)}%`;
  meter.appendChild(bar);
  score.prepend(meter);

  const where = node.querySelector(".where");
  if (r.kind === "sop" && (r.doc_title || r.doc_id)) {
    where.append(el("span", "muted", "in "), el("span", "doc", r.doc_title || r.doc_id));
    if (r.doc_id && r.doc_title) where.append(el("span", "muted", ` (${r.doc_id})`));
    if (!isSection && r.section) where.append(el("span", "sep", " › "), el("span", "section", r.section));
  } else {
    where.remove();
  }
  appendHighlighted(node.querySelector(".snippet"), r.snippet, r.highlights);

  node.querySelector(".id").textContent = r.id;
  const facets = [r.product, r.model, r.module, r.status, r.created].filter(Boolean);
  node.querySelector(".facets").textContent = facets.join(" · ");
  const codes = node.querySelector(".codes");
  const canon = (c) => c.toLowerCase().replace(/[-_./]/g, "");
  const matched = r.explanation.matched_codes || [];
  const hits = new Set(matched.map(canon));
  const chips = new Map();
  for (const code of [...matched, ...(r.error_codes || [])]) if (!chips.has(canon(code))) chips.set(canon(code), code);
  for (const [key, code] of chips) codes.append(el("span", hits.has(key) ? "chip hit" : "chip", code));
  node.querySelector(".reason").textContent = r.explanation.reason;

  node.querySelector(".related").addEventListener("click", (ev) => {
    ev.preventDefault();
    showRelated(r.id, true);
  });
  const vote = node.querySelector(".vote");
  vote.querySelector(".helpful").addEventListener("click", () => sendFeedback(vote, r.id, true, feedbackFor));
  vote.querySelector(".not-helpful").addEventListener("click", () => sendFeedback(vote, r.id, false, feedbackFor));
  return node;
}

async function sendFeedback(vote, recordId, helpful, feedbackFor) {
  vote.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    await api("/v1/feedback", {
      method: "POST",
      body: { record_id: recordId, helpful, source: "page", ...feedbackFor },
    });
    vote.replaceChildren(el("span", "thanks", helpful ? "Thanks: marked helpful" : "Thanks: marked not helpful"));
  } catch (err) {
    vote.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    showError(err);
  }
}

function showStatus(resp, count, elapsed) {
  const parts = [`${count} result${count === 1 ? "" : "s"}`, `path ${resp.path}`];
  if (resp.timings_ms && resp.timings_ms.total !== undefined) parts.push(`${resp.timings_ms.total.toFixed(0)} ms`);
  else parts.push(`${elapsed} ms`);
  $("#status").textContent = parts.join(" · ");
  if (resp.fallback_reason) $("#status").append(el("span", "fallback", ` · keyword fallback: ${resp.fallback_reason}`));
}

function showError(err) {
  const box = $("#error");
  box.hidden = false;
  box.textContent = err.status === 401 ? "This server needs an API key: paste one above." : `Error: ${err.message}`;
  if (err.field) box.append(el("span", "muted", ` (field: ${err.field})`));
  if (err.status === 401) toggleKeyPanel(true);
}

function clearMessages() {
  $("#error").hidden = true;
  $("#error").textContent = "";
  $("#status").textContent = "";
}

// ---- actions ---------------------------------------------------------------------------------
function formFilters() {
  const kinds = [...document.querySelectorAll('input[name="kind"]:checked')].map((c) => c.value);
  const product = $("#product").value.split(/[,，;；\s]+/).map((s) => s.trim()).filter(Boolean);
  return { kinds, product, mode: $("#mode").value || null, k: Number($("#k").value) };
}

async function runSearch(push) {
  const text = $("#q").value.trim();
  if (!text) return;
  const f = formFilters();
  clearMessages();
  state.query = text;
  state.relatedTo = null;
  $("#context").hidden = true;
  if (push) history.pushState(null, "", `?q=${encodeURIComponent(text)}`);
  const started = performance.now();
  $("#results").setAttribute("aria-busy", "true");
  try {
    const resp = await api("/v1/search", {
      method: "POST", body: { text, k: f.k, mode: f.mode, kind: f.kinds, product: f.product },
    });
    const list = $("#results");
    list.replaceChildren(...resp.results.map((r) => renderResult(r, { query: text })));
    if (!resp.results.length) list.append(el("p", "empty", "No matching records."));
    showStatus(resp, resp.results.length, Math.round(performance.now() - started));
  } catch (err) {
    showError(err);
  } finally {
    $("#results").removeAttribute("aria-busy");
  }
}

async function showRelated(id, push) {
  const f = formFilters();
  clearMessages();
  state.relatedTo = id;
  if (push) history.pushState(null, "", `?related=${encodeURIComponent(id)}`);
  const params = new URLSearchParams({ k: String(f.k) });
  f.kinds.forEach((k) => params.append("kind", k));
  if (f.mode) params.set("mode", f.mode);
  const started = performance.now();
  try {
    const [resp, rec] = await Promise.all([
      api(`/v1/records/${encodeURIComponent(id)}/related?${params}`),
      api(`/v1/records/${encodeURIComponent(id)}`),
    ]);
    const ctx = $("#context");
    ctx.hidden = false;
    ctx.replaceChildren(el("span", "muted", "Related to "), el("strong", "", rec.id), el("span", "", ` ${recordTitle(rec)}`));
    if (state.query) {
      const back = el("a", "back", `← back to results for “${state.query}”`);
      back.href = `?q=${encodeURIComponent(state.query)}`;
      back.addEventListener("click", (ev) => { ev.preventDefault(); $("#q").value = state.query; runSearch(true); });
      ctx.append(back);
    }
    const list = $("#results");
    list.replaceChildren();
    for (const [key, label] of GROUPS) {
      if (!resp[key].length) continue;
      const section = el("section", `group group-${key}`);
      section.append(el("h2", "group-title", `${label} (${resp[key].length})`));
      resp[key].forEach((r) => section.append(renderResult(r, { query_id: id })));
      list.append(section);
    }
    if (!resp.results.length) list.append(el("p", "empty", "No related records."));
    showStatus(resp, resp.results.length, Math.round(performance.now() - started));
  } catch (err) {
    showError(err);
  }
}

function recordTitle(rec) {
  if (rec.kind === "sop" && rec.doc_title) return rec.section ? `${rec.doc_title} / ${rec.section}` : rec.doc_title;
  return rec.title || (rec.text || "").slice(0, 60);
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.get("related")) {
    showRelated(params.get("related"), false);
  } else if (params.get("q")) {
    $("#q").value = params.get("q");
    runSearch(false);
  }
}

// ---- API key ---------------------------------------------------------------------------------
function toggleKeyPanel(open) {
  const panel = $("#key-panel");
  panel.hidden = open === undefined ? !panel.hidden : !open;
  $("#key-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) $("#api-key").focus();
}

function showKeyState() {
  $("#key-state").textContent = sessionStorage.getItem(KEY_STORE) ? "a key is set for this tab" : "no key set";
}

document.addEventListener("DOMContentLoaded", () => {
  $("#search-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSearch(true); });
  $("#key-toggle").addEventListener("click", () => toggleKeyPanel());
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("#api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    $("#api-key").value = "";
    showKeyState();
    toggleKeyPanel(false);
    if (state.relatedTo) showRelated(state.relatedTo, false); else if ($("#q").value.trim()) runSearch(false);
  });
  $("#key-clear").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORE); showKeyState(); });
  window.addEventListener("popstate", fromUrl);
  showKeyState();
  fromUrl();
});
