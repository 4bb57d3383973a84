// caselink search page. Plain DOM, no framework, no build step.
// Record text only ever reaches the page through textContent / text nodes, never innerHTML.
"use strict";

const KEY_STORE = "caselink.apiKey";
const VOTER_STORE = "caselink.voter";
const KIND_LABEL = { case: "case", problem: "problem", sop: "SOP" };
// The order an engineer reads them: the procedure, the known problem, then similar past cases.
const GROUPS = [["sops", "Procedures (SOP sections)"], ["problems", "Known problems (problem orders)"],
  ["cases", "Past cases"]];

const $ = (sel) => document.querySelector(sel);
const state = { query: "", relatedTo: null, view: "search" };
const SUGGEST_LABEL = { category: "Category", module: "Module", priority: "Priority", group: "Group",
  product: "Product", model: "Model" };

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
  const attrs = node.querySelector(".attrs");
  if (!fillAttributes(attrs, r.attributes)) attrs.remove();
  node.querySelector(".reason").textContent = r.explanation.reason;

  node.querySelector(".related").addEventListener("click", (ev) => {
    ev.preventDefault();
    showRelated(r.id, true);
  });
  const suggest = node.querySelector(".suggest");
  if (r.kind === "case") {
    suggest.addEventListener("click", () => toggleSuggestions(node, r));
  } else {
    suggest.remove();  // suggestions come from past cases' fields: offered for cases only
  }
  const readSop = node.querySelector(".read-sop");
  if (r.kind === "sop" && r.doc_id) {
    readSop.addEventListener("click", () => toggleDocument(node, r));
  } else {
    readSop.remove();
  }
  const vote = node.querySelector(".vote");
  vote.querySelector(".helpful").addEventListener("click", () => sendFeedback(vote, r.id, true, feedbackFor));
  vote.querySelector(".not-helpful").addEventListener("click", () => sendFeedback(vote, r.id, false, feedbackFor));
  return node;
}

// The record's own fields (customer, site, serial...) as key/value tags; false when it has none.
function fillAttributes(parent, attributes) {
  const entries = Object.entries(attributes || {});
  for (const [key, value] of entries) {
    const tag = el("span", "attr");
    tag.dataset.key = key;
    tag.append(el("span", "attr-key", key), el("span", "attr-value", value));
    parent.append(tag);
  }
  return entries.length > 0;
}

// Each browser votes as its own source: caselink counts a source's latest verdict on a pair once,
// so a second click (or a changed mind) is not a second vote, and two engineers are two votes.
function voter() {
  let id = localStorage.getItem(VOTER_STORE);
  if (!id) {
    // getRandomValues, not randomUUID: the page may be served over plain http inside a site.
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = `page:${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    localStorage.setItem(VOTER_STORE, id);
  }
  return id;
}

async function sendFeedback(vote, recordId, helpful, feedbackFor) {
  const buttons = [...vote.children];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const sent = await api("/v1/feedback", {
      method: "POST",
      body: { record_id: recordId, helpful, source: voter(), ...feedbackFor },
    });
    // A vote reorders what others see, so a wrong click can be taken back at once.
    const undo = el("button", "undo", "Undo");
    undo.type = "button";
    undo.addEventListener("click", async () => {
      undo.disabled = true;
      try {
        await api(`/v1/feedback/${sent.id}`, { method: "DELETE" });
        buttons.forEach((b) => { b.disabled = false; });
        vote.replaceChildren(...buttons);
      } catch (err) {
        undo.disabled = false;
        showError(err);
      }
    });
    vote.replaceChildren(el("span", "thanks", helpful ? "Thanks: marked helpful" : "Thanks: marked not helpful"), undo);
  } catch (err) {
    buttons.forEach((b) => { b.disabled = false; });
    showError(err);
  }
}

function showStatus(resp, count, elapsed) {
  const parts = [`${count} result${count === 1 ? "" : "s"}`, `path ${resp.path}`];
  if (resp.timings_ms && resp.timings_ms.total !== undefined) parts.push(`${resp.timings_ms.total.toFixed(0)} ms`);
  else parts.push(`${elapsed} ms`);
  $("#status").textContent = parts.join(" · ");
  if (resp.fallback_reason) {
    const label = resp.path !== resp.mode ? "keyword fallback: " : "";
    $("#status").append(el("span", "fallback", ` · ${label}${resp.fallback_reason}`));
  }
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
  // "customer=ACME; site=F12": key=value items (the API's attr=key=value); the server names a bad one.
  const attr = $("#attr").value.split(/[;；\n]+/).map((s) => s.trim()).filter(Boolean);
  return { kinds, product, attr, mode: $("#mode").value || null, k: Number($("#k").value),
    openOnly: $("#open-only").checked };
}

function attributeFilter(items) {
  const out = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at < 0) throw new ApiError(422, { detail: `attributes: expected key=value (e.g. customer=ACME), got “${item}”`,
      field: "attributes" });
    const key = item.slice(0, at).trim();
    (out[key] = out[key] || []).push(item.slice(at + 1).trim());
  }
  return out;
}

async function runSearch(push) {
  const text = $("#q").value.trim();
  if (!text) return;
  const f = formFilters();
  setView("search");
  clearMessages();
  state.query = text;
  state.relatedTo = null;
  $("#context").hidden = true;
  if (push) history.pushState(null, "", `?q=${encodeURIComponent(text)}`);
  const started = performance.now();
  $("#results").setAttribute("aria-busy", "true");
  try {
    const resp = await api("/v1/search", {
      method: "POST",
      body: { text, k: f.k, mode: f.mode, kind: f.kinds, product: f.product, open_only: f.openOnly, grouped: true,
        group_k: groupSizes(f.k), attributes: attributeFilter(f.attr) },
    });
    const list = $("#results");
    list.replaceChildren();
    if (resp.code_cards.length) list.append(renderCodeCards(resp.code_cards));
    const shown = renderGroups(list, resp, { query: text });
    if (!shown) list.append(el("p", "empty", "No matching records."));
    showStatus(resp, shown, Math.round(performance.now() - started));
  } catch (err) {
    showError(err);
  } finally {
    $("#results").removeAttribute("aria-busy");
  }
}

async function showRelated(id, push) {
  const f = formFilters();
  setView("search");
  clearMessages();
  state.relatedTo = id;
  if (push) history.pushState(null, "", `?related=${encodeURIComponent(id)}`);
  const params = new URLSearchParams({ k: String(f.k) });
  f.kinds.forEach((k) => params.append("kind", k));
  if (f.mode) params.set("mode", f.mode);
  if (f.openOnly) params.set("open_only", "true");
  f.attr.forEach((a) => params.append("attr", a.replace(/\s*=\s*/, "=")));
  const started = performance.now();
  try {
    const [resp, rec] = await Promise.all([
      api(`/v1/records/${encodeURIComponent(id)}/related?${params}`),
      api(`/v1/records/${encodeURIComponent(id)}`),
    ]);
    const ctx = $("#context");
    ctx.hidden = false;
    ctx.replaceChildren(el("span", "muted", "Related to "), el("strong", "", rec.id), el("span", "", ` ${recordTitle(rec)}`));
    const attrs = el("div", "attrs");
    if (fillAttributes(attrs, rec.attributes)) ctx.append(attrs);
    if (state.query) {
      const back = el("a", "back", `← back to results for “${state.query}”`);
      back.href = `?q=${encodeURIComponent(state.query)}`;
      back.addEventListener("click", (ev) => { ev.preventDefault(); $("#q").value = state.query; runSearch(true); });
      ctx.append(back);
    }
    const list = $("#results");
    list.replaceChildren();
    renderGroups(list, resp, { query_id: id });
    if (!resp.results.length) list.append(el("p", "empty", "No related records."));
    showStatus(resp, resp.results.length, Math.round(performance.now() - started));
  } catch (err) {
    showError(err);
  }
}

// "Show N": a quarter each for procedures and known problems, half for past cases.
function groupSizes(k) {
  return { sops: Math.ceil(k / 4), problems: Math.ceil(k / 4), cases: Math.ceil(k / 2) };
}

// Appends a section per non-empty group, in GROUPS order; returns how many results it shows.
function renderGroups(list, resp, feedbackFor) {
  let shown = 0;
  for (const [key, label] of GROUPS) {
    if (!resp[key].length) continue;
    const section = el("section", `group group-${key}`);
    section.append(el("h2", "group-title", `${label} (${resp[key].length})`));
    resp[key].forEach((r) => section.append(renderResult(r, feedbackFor)));
    list.append(section);
    shown += resp[key].length;
  }
  return shown;
}

function recordTitle(rec) {
  if (rec.kind === "sop" && rec.doc_title) return rec.section ? `${rec.doc_title} / ${rec.section}` : rec.doc_title;
  return rec.title || (rec.text || "").slice(0, 60);
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.get("view") === "emerging") {
    for (const [name, id] of EMERGING_PARAMS) if (params.has(name)) $(id).value = params.get(name);
    loadEmerging(false);
  } else if (params.get("related")) {
    showRelated(params.get("related"), false);
  } else if (params.get("q")) {
    $("#q").value = params.get("q");
    runSearch(false);
  } else {
    setView("search");
  }
}

// ---- views ---------------------------------------------------------------------------------------
function setView(view) {
  state.view = view;
  const emerging = view === "emerging";
  for (const id of ["#search-form", "#results"]) $(id).hidden = emerging;
  for (const id of ["#emerging-form", "#emerging"]) $(id).hidden = !emerging;
  if (emerging) $("#context").hidden = true;
  for (const [id, on] of [["#nav-search", !emerging], ["#nav-emerging", emerging]]) {
    if (on) $(id).setAttribute("aria-current", "page"); else $(id).removeAttribute("aria-current");
  }
}

function backToSearch() {
  if (state.relatedTo) { showRelated(state.relatedTo, true); return; }
  if (state.query) { $("#q").value = state.query; runSearch(true); return; }
  setView("search");
  clearMessages();
  history.pushState(null, "", "/");
  $("#q").focus();
}

// ---- emerging problems ---------------------------------------------------------------------------
// Query parameter -> form input. Empty inputs are left out (the server's defaults apply).
const EMERGING_PARAMS = [["window_days", "#em-window"], ["as_of", "#em-as-of"], ["product", "#em-product"],
  ["min_size", "#em-min-size"], ["similarity", "#em-similarity"]];

function emergingParams() {
  const params = new URLSearchParams();
  for (const [name, id] of EMERGING_PARAMS) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function loadEmerging(push) {
  setView("emerging");
  clearMessages();
  const params = emergingParams();
  if (push) history.pushState(null, "", `?view=emerging${params.toString() ? `&${params}` : ""}`);
  const box = $("#emerging");
  box.setAttribute("aria-busy", "true");
  $("#status").textContent = "Looking for emerging problems…";
  const started = performance.now();
  try {
    const report = await api(`/v1/emerging?${params}`);
    renderEmerging(report, Math.round(performance.now() - started));
  } catch (err) {
    $("#status").textContent = "";
    box.replaceChildren();
    showError(err);
  } finally {
    box.removeAttribute("aria-busy");
  }
}

function renderEmerging(report, elapsed) {
  const box = $("#emerging");
  box.replaceChildren();
  const n = report.groups.length;
  const parts = [`${n} emerging group${n === 1 ? "" : "s"}`,
    `${report.recent_cases} recent case${report.recent_cases === 1 ? "" : "s"}`];
  if (report.excluded_linked) parts.push(`${report.excluded_linked} already linked to open problem orders`);
  parts.push(report.as_of ? `window ${report.window_start} – ${report.as_of}` : "no dated cases", `${elapsed} ms`);
  $("#status").textContent = parts.join(" · ");

  const groups = el("section", "group group-emerging");
  groups.append(el("h2", "group-title", `Emerging groups (${n})`));
  report.groups.forEach((g) => groups.append(renderGroup(g, report.weeks)));
  if (!n) groups.append(el("p", "empty", "No burst of similar uncovered cases in this window."));
  const rising = el("section", "group group-rising");
  rising.append(el("h2", "group-title", `Rising problem orders (${report.rising_problems.length})`));
  report.rising_problems.forEach((p) => rising.append(renderRising(p, report.weeks)));
  if (!report.rising_problems.length) rising.append(el("p", "empty", "No open problem order is rising."));
  box.append(groups, rising);
}

function fixed(x, digits) {
  return Number(x).toFixed(digits);
}

function recordLink(id, cls) {
  const a = el("a", cls, id);
  a.href = `?related=${encodeURIComponent(id)}`;
  a.title = `records related to ${id}`;
  a.addEventListener("click", (ev) => { ev.preventDefault(); showRelated(id, true); });
  return a;
}

function renderGroup(g, weeks) {
  const node = $("#group-tpl").content.firstElementChild.cloneNode(true);
  node.dataset.cases = g.case_ids.join(" ");
  node.querySelector(".title").textContent = g.title;
  node.querySelector(".score").textContent = `score ${fixed(g.score, 1)}`;
  const seen = g.first_seen === g.last_seen ? g.first_seen : `${g.first_seen} – ${g.last_seen}`;
  const stats = [`${g.size} cases`, `growth ×${fixed(g.growth, 1)}`, seen,
    `previous windows: ${g.history_counts.length ? g.history_counts.join(", ") : "–"}`, `cohesion ${fixed(g.cohesion, 2)}`];
  const statsBox = node.querySelector(".stats");
  stats.forEach((s, i) => statsBox.append(el("span", i === 1 ? "growth" : "", s)));
  node.querySelector(".facets").textContent = [...g.products, ...g.modules].join(" · ");
  const codes = node.querySelector(".codes");
  g.common_codes.forEach((c) => codes.append(el("span", "chip", c)));
  const terms = node.querySelector(".terms");
  if (g.common_terms.length) terms.textContent = `Common words: ${g.common_terms.join(", ")}`; else terms.remove();
  if (g.similar_problem) {
    const sp = g.similar_problem;
    const similar = node.querySelector(".similar");
    similar.hidden = false;
    similar.append(el("span", "", "Close to known problem order "), recordLink(sp.id, "member"),
      el("span", "", ` ${sp.title} (${sp.status || "no status"}, similarity ${fixed(sp.similarity, 2)}): a regression?`));
  }
  const members = node.querySelector(".members");
  g.case_ids.forEach((id) => members.append(recordLink(id, "member")));
  members.before(trendFigure(g.weekly, weeks, g.title));
  return node;
}

function renderRising(p, weeks) {
  const node = el("article", "result kind-problem rising");
  node.dataset.id = p.id;
  const head = el("div", "head");
  head.append(el("span", "badge badge-problem", "problem"), el("h3", "title", p.title || p.id),
    el("span", "score", `growth ×${fixed(p.growth, 1)}`));
  const meta = el("div", "meta");
  meta.append(el("span", "id", p.id), el("span", "facets", [p.status, p.module].filter(Boolean).join(" · ")),
    el("span", "", `${p.current} cases this window, ${fixed(p.baseline, 1)} per window before ` +
      `(${p.history_counts.join(", ") || "–"})`));
  const members = el("div", "members");
  members.append(el("span", "muted", "Cases:"));
  p.case_ids.forEach((id) => members.append(recordLink(id, "member")));
  const actions = el("div", "actions");
  const related = recordLink(p.id, "related");
  related.textContent = "Related to this problem order";
  actions.append(related);
  node.append(head, meta, trendFigure(p.weekly, weeks, p.title || p.id), members, actions);
  return node;
}

// ---- field suggestions ---------------------------------------------------------------------------
async function toggleSuggestions(node, r) {
  const panel = node.querySelector(".suggestions");
  const button = node.querySelector(".suggest");
  if (!panel.hidden) {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.textContent = "Suggest fields";
    return;
  }
  panel.hidden = false;
  button.setAttribute("aria-expanded", "true");
  button.textContent = "Hide suggestions";
  if (panel.dataset.loaded) return;
  panel.replaceChildren(el("span", "muted", "Asking similar past cases…"));
  button.disabled = true;
  try {
    const s = await api(`/v1/records/${encodeURIComponent(r.id)}/suggestions`);
    panel.replaceChildren(renderSuggestions(s, r));
    panel.dataset.loaded = "1";
  } catch (err) {
    panel.replaceChildren(el("span", "suggest-error", `Could not get suggestions: ${err.message}`));
    if (err.status === 401) showError(err);
  } finally {
    button.disabled = false;
  }
}

// The whole SOP under a suggested section: the step found is read in its procedure.
async function toggleDocument(node, r) {
  const panel = node.querySelector(".sop-doc");
  const button = node.querySelector(".read-sop");
  const open = panel.hidden;
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  button.textContent = open ? "Hide the SOP" : "Read the whole SOP";
  if (!open || panel.dataset.loaded) return;
  panel.replaceChildren(el("span", "muted", "Loading the document…"));
  button.disabled = true;
  try {
    const doc = await api(`/v1/documents/${encodeURIComponent(r.doc_id)}`);
    const list = el("ol", "sections");
    for (const s of doc.sections) {
      const item = el("li", s.id === r.id ? "current" : "");
      item.dataset.id = s.id;
      item.append(el("h4", "", s.section || s.id), el("p", "body", s.text));
      list.append(item);
    }
    panel.replaceChildren(el("div", "muted", `${doc.title} (${doc.doc_id}), ${doc.sections.length} section${doc.sections.length === 1 ? "" : "s"}`), list);
    panel.dataset.loaded = "1";
  } catch (err) {
    panel.replaceChildren(el("span", "suggest-error", `Could not load the document: ${err.message}`));
    if (err.status === 401) showError(err);
  } finally {
    button.disabled = false;
  }
}

function renderSuggestions(s, r) {
  const table = el("table", "suggest-table");
  table.append(el("caption", "muted",
    `Suggested from ${s.neighbours.length} similar past case${s.neighbours.length === 1 ? "" : "s"}`));
  for (const [name, f] of Object.entries(s.fields)) {
    const row = el("tr", f.value === null ? "none" : "");
    row.dataset.field = name;
    row.append(el("th", "", SUGGEST_LABEL[name] || name));
    const value = el("td", "value");
    if (f.value === null) value.append(el("span", "no-value", "no suggestion"));
    else value.append(el("strong", "", f.value));
    if (r[name]) value.append(el("span", "muted", ` (now: ${r[name]})`));
    const conf = el("td", "conf");
    const meter = el("span", "meter");
    const bar = el("span", "bar");
    bar.style.width = `${Math.round(Math.max(0, Math.min(1, f.confidence)) * 100)}%`;
    meter.append(bar);
    conf.append(meter, el("span", "", ` ${Math.round(f.confidence * 100)}%`));
    row.append(value, conf, el("td", "why", f.reason));
    table.append(row);
  }
  return table;
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
  $("#emerging-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadEmerging(true); });
  $("#nav-emerging").addEventListener("click", (ev) => { ev.preventDefault(); loadEmerging(true); });
  $("#nav-search").addEventListener("click", (ev) => { ev.preventDefault(); backToSearch(); });
  $("#key-toggle").addEventListener("click", () => toggleKeyPanel());
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("#api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    $("#api-key").value = "";
    showKeyState();
    toggleKeyPanel(false);
    if (state.view === "emerging") loadEmerging(false);
    else if (state.relatedTo) showRelated(state.relatedTo, false);
    else if ($("#q").value.trim()) runSearch(false);
  });
  $("#key-clear").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORE); showKeyState(); });
  window.addEventListener("popstate", fromUrl);
  showKeyState();
  fromUrl();
});
