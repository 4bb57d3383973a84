// The code card on top of a search that names an error code: its procedure, its known problems
// (open first, with the workaround), how many cases carry it and when it was last seen.
// Uses el, recordLink and showRelated from app.js (loaded after this file, called after load).
"use strict";

function renderCodeCards(cards) {
  const box = el("section", "code-cards");
  box.setAttribute("aria-label", "Error codes in the search");
  cards.forEach((card) => box.append(renderCodeCard(card)));
  return box;
}

function renderCodeCard(card) {
  const node = el("article", "code-card");
  node.dataset.code = card.code;
  const head = el("div", "head");
  const cases = `${card.case_count}${card.case_count_capped ? "+" : ""} case${card.case_count === 1 ? "" : "s"}`;
  head.append(el("span", "chip hit code", card.code),
    el("span", "seen", card.last_seen ? `${cases} · last seen ${card.last_seen}` : cases));
  node.append(head);

  const procedures = el("div", "procedures");
  procedures.append(el("h4", "", "Procedure"));
  if (!card.procedures.length) procedures.append(el("span", "muted", "no SOP section names this code"));
  for (const p of card.procedures) {
    const item = el("div", "procedure");
    item.dataset.id = p.id;
    const link = el("a", "open-sop", [p.doc_title || p.doc_id, p.section].filter(Boolean).join(" › "));
    link.href = `?related=${encodeURIComponent(p.id)}`;
    link.title = `${p.id}: show it in the procedures below and open the whole SOP`;
    link.addEventListener("click", (ev) => { ev.preventDefault(); showProcedure(p.id); });
    item.append(link, el("span", "muted", ` ${p.doc_id}`));
    procedures.append(item);
  }
  node.append(procedures);

  const problems = el("div", "problems");
  problems.append(el("h4", "", "Known problems"));
  if (!card.problems.length) problems.append(el("span", "muted", "no problem order carries this code"));
  for (const p of card.problems) {
    const item = el("div", `known-problem ${p.open ? "open" : "finished"}`);
    item.dataset.id = p.id;
    item.append(recordLink(p.id, "member"),
      el("span", `state ${p.open ? "state-open" : "state-finished"}`, p.open ? `open · ${p.status || "no status"}` :
        `finished · ${p.status}`),
      el("span", "title", p.title));
    if (p.workaround) item.append(el("p", "workaround", `Workaround: ${p.workaround}`));
    problems.append(item);
  }
  node.append(problems);
  return node;
}

// The section in the procedures group, scrolled to with its whole SOP open; the related view when
// the group does not show it.
function showProcedure(id) {
  const result = document.querySelector(`#results .group-sops .result[data-id="${CSS.escape(id)}"]`);
  if (!result) { showRelated(id, true); return; }
  result.scrollIntoView({ block: "start" });
  const read = result.querySelector(".read-sop");
  if (read && read.getAttribute("aria-expanded") !== "true") read.click();
}
