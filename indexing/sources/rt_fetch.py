"""One page of the RT walk, read in three REST2 requests whatever the number of tickets (RT checks
the token with bcrypt on every request, so asking per ticket would cost a check each): the
tickets with their fields, custom fields and links, their messages' transactions, and those
transactions' attachments. ``rt.py`` decides which tickets; this reads them.
"""

from __future__ import annotations

import re

from caselink.config import RTSourceConfig
from indexing.sources import NOTE_MARK
from indexing.sources.rt_client import RTClient
from indexing.sources.rt_record import html_text

_NOTE_RE = re.compile(NOTE_MARK + r" ([0-9a-f]{12})")  # caselink's own note, among a ticket's comments


def read_tickets(client: RTClient, config: RTSourceConfig, ids: list[int]) -> tuple[dict[str, dict], dict[str, str]]:
    """Tickets by number, with every field a record needs, in one search (runs of consecutive
    numbers as ranges: a first sync asks for whole pages); and the tickets merged into them
    (merged ticket -> the one kept), whose messages RT shows on the one kept."""
    fields = "Subject,Queue,Status,Priority,Created,Resolved,LastUpdated,EffectiveId"
    if config.fields or config.attributes:
        fields += ",CustomFields"
    if config.links:
        fields += ",_hyperlinks"
    out: dict[str, dict] = {}
    merged: dict[str, str] = {}
    for t in client.pages("/tickets", {"query": _id_query(ids, "EffectiveId"), "orderby": "id",
                                       "fields": fields, "fields[Queue]": "Name"}):
        sid, kept = str(t["id"]), t.get("EffectiveId", t["id"])
        kept = str(kept.get("id", sid) if isinstance(kept, dict) else kept)
        if kept == sid:
            out[sid] = t
        else:
            merged[sid] = kept
    return out, merged


def read_messages(client: RTClient, sids: list[str], merged: dict[str, str]
                  ) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Per ticket: the text of its create message and correspondence, its merged tickets'
    included (one body per message: its plain text, else its HTML as text), and the hashes of
    the caselink notes among its comments."""
    if not sids:
        return {}, {}
    owner = {**{s: s for s in sids}, **{m: k for m, k in merged.items() if k in sids}}
    txns: dict[str, tuple[str, str]] = {}  # transaction id -> (ticket kept, type)
    for t in client.pages("/transactions", {"fields": "ObjectId,Type", "orderby": "id"}, query=[
            {"field": "ObjectType", "value": "RT::Ticket"},
            {"field": "ObjectId", "operator": "IN", "value": sorted(int(s) for s in owner)},
            {"field": "Type", "operator": "IN", "value": ["Create", "Correspond", "Comment"]}]):
        txns[str(t["id"])] = (owner.get(str(t.get("ObjectId")), ""), str(t.get("Type")))
    parts: dict[str, dict[str, list[tuple[str, str]]]] = {}
    notes: dict[str, set[str]] = {}
    ids = [int(t) for t in txns]
    for i in range(0, len(ids), 500):
        for att in client.pages("/attachments", {"fields": "ContentType,Content,TransactionId,Filename",
                                                 "orderby": "id"},
                                query=[{"field": "TransactionId", "operator": "IN", "value": ids[i:i + 500]}]):
            txn = str(att.get("TransactionId"))
            sid, txn_type = txns.get(txn, ("", ""))
            content = att.get("Content") or ""
            if not sid or not isinstance(content, str):
                continue
            if txn_type == "Comment":
                notes.setdefault(sid, set()).update(_NOTE_RE.findall(content))
                continue
            ctype = (att.get("ContentType") or "").lower()
            if not att.get("Filename") and ctype in ("text/plain", "text/html"):
                parts.setdefault(sid, {}).setdefault(txn, []).append((ctype, content))
    texts = {}
    for sid, messages in parts.items():
        bodies = []
        for pieces in messages.values():
            plain = [b for t, b in pieces if t == "text/plain"]
            bodies.append("\n".join(plain) if plain else "\n".join(html_text(b) for _, b in pieces))
        texts[sid] = "\n\n".join(b.strip() for b in bodies if b.strip())
    return texts, notes


def _id_query(ids: list[int], field: str = "id") -> str:
    """TicketSQL for these ticket numbers: ``id >= a AND id <= b`` per run of consecutive ones.
    On ``EffectiveId`` it also finds the tickets merged into them (RT leaves those out otherwise)."""
    runs: list[list[int]] = []
    for n in sorted(set(ids)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return " OR ".join(f"{field} = {a}" if a == b else f"({field} >= {a} AND {field} <= {b})" for a, b in runs)
