"""A Request Tracker ticket as a caselink record: custom fields mapped to record fields and to
attributes (``[sources.rt] fields`` and ``attributes``), RT links between tickets, dates, and
message bodies in HTML read as text. Pure mapping of REST2's JSON; no calls to RT here
(``indexing/sources/rt.py`` reads the tickets, ``rt_client.py`` talks to RT).
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from html.parser import HTMLParser

from caselink.config import RTSourceConfig
from indexing.records import MAX_ATTRIBUTE_VALUE, Record, is_closed_status

EPOCH = "1970-01-01T00:00:00Z"  # RT's "never" (an unresolved ticket's Resolved)
TEXT_MAX = 190_000  # Record.text allows 200,000 characters


def ticket_record(config: RTSourceConfig, ticket: dict, queue: str, text: str) -> tuple[Record, list[str]]:
    """The ticket as a record, and what of it could not be kept (an attribute over its bound)."""
    c = config
    cfs = {cf.get("name"): [str(v) for v in cf.get("values") or [] if v is not None and str(v).strip()]
           for cf in ticket.get("CustomFields", [])}
    fields: dict[str, object] = {}
    for key, cf in c.fields.items():
        values = cfs.get(cf, [])
        fields[key] = values if key == "error_codes" else ", ".join(values)
    attributes: dict[str, str] = {}
    warnings: list[str] = []
    for key, cf in c.attributes.items():
        value = ", ".join(cfs.get(cf, []))
        if len(value) > MAX_ATTRIBUTE_VALUE:
            # Cut short it would be another value, one a filter on the real one never matches: left out.
            warnings.append(f"{record_id(c, str(ticket['id']))}: attribute '{key}' (RT custom field '{cf}') left out: "
                            f"{len(value)} characters, at most {MAX_ATTRIBUTE_VALUE} are allowed")
        elif value:
            attributes[key] = value
    fields.setdefault("priority", "" if str(ticket.get("Priority", "0")) == "0" else str(ticket["Priority"]))
    links = [record_id(c, str(h["id"])) for h in ticket.get("_hyperlinks", [])
             if h.get("type") == "ticket" and h.get("ref") in c.links and "id" in h]
    status = str(ticket.get("Status", ""))
    resolved = ticket.get("Resolved") or EPOCH
    return Record(
        attributes=attributes, id=record_id(c, str(ticket["id"])), kind=c.queue_kinds.get(queue, c.kind),
        title=str(ticket.get("Subject", ""))[:1000], text=text[:TEXT_MAX], status=status, group=queue,
        created=_date(ticket.get("Created")),
        closed=_date(resolved) if resolved != EPOCH and is_closed_status(status) else None,
        links=sorted(set(links), key=_natural), **fields), warnings  # RT's order varies; the hash must not


def record_id(config: RTSourceConfig, sid: str) -> str:
    """The caselink record id of ticket number ``sid``."""
    return f"{config.id_prefix}{sid}"


def _date(value: object):
    if not value or value == EPOCH:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _natural(record_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", record_id))


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.out: list[str] = []

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("br", "p", "div", "li", "tr"):
            self.out.append("\n")


def html_text(body: str) -> str:
    p = _Text()
    p.feed(body)
    return html.unescape(re.sub(r"\n\s*\n+", "\n", "".join(p.out))).strip()
