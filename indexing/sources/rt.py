"""Request Tracker 5 as a source, over its REST2 API with token auth.

What is read, per ticket in the configured queues: subject; the create message and later
correspondence (never comments: they are internal, and caselink's own note is one); queue,
status, created and resolved dates, priority; custom fields mapped to product, model, module,
error codes, category and priority (``[sources.rt] fields``) and to record attributes
(``[sources.rt] attributes``); RT links between tickets.

How changes are found (REST2 answers in UTC, TicketSQL reads dates in the RT user's time zone):

1. Tickets with ``LastUpdated >= watermark``, walked in id order with an ``id >`` cursor, so a
   ticket updated during the walk neither shifts a page nor is skipped. A ticket whose
   LastUpdated equals the version already applied is not fetched again; a version read within
   the margin below is marked unsettled (RT's LastUpdated counts whole seconds, and a second
   update in the same second keeps it), so that ticket is fetched once more next time. The
   changed tickets of a page are read together, in three more requests whatever their number
   (RT checks the token with bcrypt on every request): the tickets with their custom fields and
   links, their messages' transactions, those transactions' attachments.
2. Deletions: RT's searches never list deleted tickets nor those merged into another, so the
   transactions since the watermark that set a status ``deleted`` or a MergedInto link are read
   instead. A ticket kept in a merge is re-read with the merged ones' messages, as RT shows it.
3. The next watermark is RT's own clock (its ``Date`` header) when the walk began, less a
   margin for RT's one-second timestamps; a ticket changed during the walk is seen again next
   time and skipped as unchanged if it was not. The watermark keeps the cursor, so a walk killed
   half-way resumes after the last ticket applied.

A ticket moved to a queue that is not synced, or merged into another, leaves caselink. Tickets
removed with the shredder leave no trace to follow: a full reconciliation (``caselink sync rt
--full``, and once when ``caselink serve`` starts) compares the ticket ids RT has with those
synced.

Here: what to ask RT and when (checks, the walk, deletions, notes). ``rt_fetch.py`` reads one
page's tickets and messages; ``rt_client.py`` talks to RT (token, retries, errors);
``rt_record.py`` maps a ticket to a record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from caselink.config import RTSourceConfig
from indexing.records import MAX_ATTRIBUTES, attribute_key_error
from indexing.sources import Batch, Change, SourceError
from indexing.sources.rt_client import API, RTClient
from indexing.sources.rt_fetch import read_messages, read_tickets
from indexing.sources.rt_record import record_id, ticket_record

log = logging.getLogger("caselink.sources.rt")

# RT stores whole seconds and its clock and ours may differ a little: look this far back.
MARGIN = timedelta(seconds=2)
UNSETTLED = "~"  # appended to a version read within RT's one-second resolution of its update (_settled)
_TICKET_URI = re.compile(r"/ticket/(\d+)$")  # the end of an RT link URI: fsck.com-rt://<rtname>/ticket/42


@dataclass(frozen=True)
class _Cursor:
    """The stored watermark. Between walks: ``since`` only. During a walk: where it reads from,
    the watermark it ends at (``next``) and the last ticket id applied (``after``)."""

    since: str | None  # UTC ISO; None: from the first ticket
    next: str | None = None
    after: int = 0

    def dump(self) -> str:
        return json.dumps({"since": self.since, "next": self.next, "after": self.after})

    @classmethod
    def load(cls, text: str | None) -> "_Cursor | None":
        if not text:
            return None
        try:
            d = json.loads(text)
            return cls(d.get("since"), d.get("next"), int(d.get("after") or 0))
        except (ValueError, TypeError, AttributeError):
            raise SourceError(f"the stored RT watermark is unreadable: {text[:80]!r}", field="sources.rt",
                              hint="run caselink sync rt --full to read every ticket again") from None


class RTSource:
    """One RT instance. Create with :meth:`from_config`; :meth:`check` before the first pull."""

    name = "rt"

    def __init__(self, config: RTSourceConfig, client: RTClient, tz: ZoneInfo):
        self.config = config
        self.client = client
        self.tz = tz

    @classmethod
    def from_config(cls, config: RTSourceConfig, *, env: dict[str, str] | None = None) -> "RTSource":
        import os

        env = dict(os.environ) if env is None else env
        token = env.get(config.token_env, "").strip()
        if not token and config.token_file is not None:
            path = Path(config.token_file).expanduser()
            if not path.is_file():
                raise SourceError(f"sources.rt.token_file {path} does not exist", field="sources.rt.token_file")
            token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise SourceError(f"no RT token: the variable {config.token_env} is unset and no sources.rt.token_file "
                              "is given", field="sources.rt.token_env",
                              hint="make a token in RT (Logged in as > Settings > Auth Tokens)")
        try:
            tz = ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SourceError(f"sources.rt.timezone '{config.timezone}' is not a time zone name",
                              field="sources.rt.timezone", hint="use a name like UTC or Asia/Shanghai") from None
        for key in config.attributes:
            if problem := attribute_key_error(key):
                raise SourceError(f"sources.rt.attributes: {problem}", field=f"sources.rt.attributes.{key}")
        if len(config.attributes) > MAX_ATTRIBUTES:
            raise SourceError(f"sources.rt.attributes maps {len(config.attributes)} keys, a record holds at most "
                              f"{MAX_ATTRIBUTES}", field="sources.rt.attributes")
        return cls(config, RTClient(url=config.url, token=token, timeout=config.timeout_seconds,
                                    retries=config.retries), tz)

    def close(self) -> None:
        self.client.close()

    # -- checks ------------------------------------------------------------------------------
    def check(self) -> None:
        c = self.config
        about = self.client.call("GET", "/rt", missing_ok=True)
        if not isinstance(about, dict) or "Version" not in about:  # e.g. a URL ending in /REST/2.0 already
            raise SourceError(f"{self.client.url}{API}/rt is not RT's REST2 API"
                              f"{' (HTTP 404)' if about is None else ''}", field="sources.rt.url",
                              hint="set sources.rt.url to RT's base URL, the part before /REST/2.0 "
                                   "(https://rt.example.com, not https://rt.example.com/REST/2.0)")
        queue_ids = {}
        for queue in c.queues:
            found = self.client.call("GET", f"/queue/{_path(queue)}", missing_ok=True)
            if found is None:
                raise SourceError(f"RT has no queue '{queue}' (or the token's user cannot see it)",
                                  field="sources.rt.queues", hint="list queue names as RT shows them")
            queue_ids[queue] = str(found.get("id", "")) if isinstance(found, dict) else ""
        for queue in c.queue_kinds:
            if queue not in c.queues:
                raise SourceError(f"sources.rt.queue_kinds names '{queue}', which is not in sources.rt.queues",
                                  field="sources.rt.queue_kinds")
        self._check_timezone()
        mapped = self._mapped()
        if mapped:
            names = {cf.get("Name") for cf in self.client.pages(
                "/customfields", {"query": json.dumps([{"field": "LookupType", "value": "RT::Queue-RT::Ticket"}]),
                                  "fields": "Name"})}
            for setting, cf in mapped:
                if cf not in names:
                    raise SourceError(f"RT has no ticket custom field '{cf}' ({setting})", field=setting,
                                      hint=f"RT's ticket custom fields: {', '.join(sorted(n for n in names if n))}")
            self._check_fields_applied(queue_ids, mapped)

    def _mapped(self) -> list[tuple[str, str]]:
        """(setting, RT custom field) for every mapped field and attribute, checked alike."""
        return ([(f"sources.rt.fields.{k}", cf) for k, cf in self.config.fields.items()]
                + [(f"sources.rt.attributes.{k}", cf) for k, cf in self.config.attributes.items()])

    def _check_fields_applied(self, queue_ids: dict[str, str], mapped: list[tuple[str, str]]) -> None:
        """A mapped custom field must apply to a synced queue: one that applies to none would leave
        its caselink field (or attribute) empty on every ticket without a word."""
        applied = {queue: {cf.get("Name") for cf in self.client.pages(f"/queue/{qid}/customfields",
                                                                      {"fields": "Name,LookupType"})
                           if cf.get("LookupType") == "RT::Queue-RT::Ticket"}
                   for queue, qid in queue_ids.items() if qid.isdigit()}
        for setting, cf in mapped:
            key = setting.rsplit(".", 1)[1]
            missing = [q for q in applied if cf not in applied[q]]
            if applied and len(missing) == len(applied):
                raise SourceError(f"RT's custom field '{cf}' ({setting}) applies to none of the "
                                  f"synced queues ({', '.join(applied)}): {key} would be empty on every ticket",
                                  field=setting,
                                  hint=f"in RT apply '{cf}' to the queues (Admin > Custom Fields > {cf} > "
                                       f"Applies to), or map {key} to another field")
            if missing:
                log.warning("RT's custom field '%s' (%s) does not apply to queue %s: tickets there have no %s",
                            cf, setting, ", ".join(missing), key)

    def _check_timezone(self) -> None:
        """TicketSQL reads dates in the RT user's time zone, REST2 answers in UTC: a wrong
        ``timezone`` would shift the watermark and miss changes. The last updated ticket must be
        found in the one-second window its own LastUpdated names."""
        last = self.client.call("GET", "/tickets", params={"query": "id > 0", "orderby": "LastUpdated",
                                                           "order": "DESC", "per_page": 1, "fields": "LastUpdated"})
        items = (last or {}).get("items", [])
        if not items or not items[0].get("LastUpdated"):
            return  # an empty RT: nothing to compare yet
        sid, when = items[0]["id"], items[0]["LastUpdated"]
        upto = _iso(datetime.fromisoformat(when.replace("Z", "+00:00")) + timedelta(seconds=1))
        found = self.client.call("GET", "/tickets", params={
            "query": f"id = {sid} AND LastUpdated >= '{self._local(when)}' AND LastUpdated < '{self._local(upto)}'",
            "per_page": 1})
        if not (found or {}).get("items"):
            raise SourceError(f"sources.rt.timezone '{self.config.timezone}' is not the RT user's time zone: RT "
                              f"did not find ticket {sid} at its own LastUpdated {when} (UTC) read in that zone",
                              field="sources.rt.timezone",
                              hint="set it to the token user's time zone in RT (its preference, else RT's "
                                   "$Timezone), e.g. UTC or Asia/Shanghai")

    # -- reading -----------------------------------------------------------------------------
    def pull(self, watermark: str | None, known: Callable[[str], str | None]) -> Iterator[Batch]:
        cursor = _Cursor.load(watermark)
        if cursor is None or cursor.next is None:
            # A fresh walk: from where the last one ended to RT's clock now.
            since = cursor.since if cursor else None
            self.client.call("GET", "/rt")
            now = self.client.last_date or datetime.now(timezone.utc)
            cursor = _Cursor(since, _iso(now - MARGIN), 0)
            if since:
                deleted = self._gone_since(since)
                if deleted:
                    yield Batch([Change(sid, self._rid(sid), "deleted", None) for sid in deleted], cursor.dump())
        query = f"LastUpdated >= '{self._local(cursor.since)}'" if cursor.since else "id > 0"
        after = cursor.after
        ahead: deque[tuple[Future, int]] = deque()  # pages being read, oldest first
        with ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="rt-fetch") as pool:
            while True:
                data = self.client.call("GET", "/tickets", params={
                    "query": f"({query}) AND id > {after}", "orderby": "id", "order": "ASC",
                    "per_page": self.config.page_size, "page": 1,
                    "fields": "Queue,Status,LastUpdated", "fields[Queue]": "Name"})
                items = data.get("items", [])
                done = len(items) < self.config.page_size
                if items:
                    todo = [it for it in items if known(str(it["id"])) != it.get("LastUpdated")]
                    after = int(items[-1]["id"])
                    ahead.append((pool.submit(self._changes, todo, cursor.next), after))
                # Up to ``workers`` pages are read at once, the next ones while one is applied.
                while ahead and (done or len(ahead) >= self.config.workers):
                    future, upto = ahead.popleft()
                    yield Batch(future.result(), _Cursor(cursor.since, cursor.next, upto).dump())
                if done:
                    break
        yield Batch([], _Cursor(cursor.next).dump())

    def _gone_since(self, since: str) -> list[str]:
        """Tickets deleted or merged into another since ``since``: the walk never sees them (RT's
        searches leave both out), their transactions tell. A merge records a MergedInto link on
        both tickets, naming the one kept."""
        sql = (f"ObjectType = 'RT::Ticket' AND Created >= '{self._local(since)}' AND ((Type = 'Status' AND "
               f"NewValue = 'deleted') OR (Type = 'AddLink' AND Field = 'MergedInto'))")
        gone = []
        for t in self.client.pages("/transactions", {"query": sql, "fields": "ObjectId,Type,NewValue"}):
            sid = str(t.get("ObjectId"))
            if t.get("Type") != "AddLink":
                gone.append(sid)
            elif (kept := _TICKET_URI.search(str(t.get("NewValue") or ""))) and kept.group(1) != sid:
                gone.append(sid)
        return list(dict.fromkeys(gone))

    def present(self) -> set[str]:
        query = " OR ".join(f"Queue = '{_quote(q)}'" for q in self.config.queues)
        out: set[str] = set()
        after = 0
        while True:
            data = self.client.call("GET", "/tickets", params={
                "query": f"({query}) AND id > {after}", "orderby": "id", "order": "ASC", "per_page": 100, "page": 1})
            items = data.get("items", [])
            out.update(str(it["id"]) for it in items)
            if len(items) < 100:
                return out
            after = int(items[-1]["id"])

    def _changes(self, items: list[dict], upto: str) -> list[Change]:
        """The changes behind one page of the walk, read in a few REST2 calls for the whole page
        (not per ticket: each request costs RT a bcrypt check of the token): the tickets with
        their fields, custom fields and links; their messages' transactions; those attachments."""
        out: dict[str, Change] = {}
        fetch: list[dict] = []
        for it in items:
            sid = str(it["id"])
            if (it.get("Queue") or {}).get("Name", "") not in self.config.queues or it.get("Status") == "deleted":
                out[sid] = Change(sid, self._rid(sid), it.get("LastUpdated", ""), None)
            else:
                fetch.append(it)
        tickets, merged = read_tickets(self.client, self.config, [int(it["id"]) for it in fetch]) if fetch else ({}, {})
        texts, notes = read_messages(self.client, sorted(tickets, key=int), merged)
        for it in fetch:
            sid, version = str(it["id"]), it.get("LastUpdated", "")
            ticket = tickets.get(sid)
            queue = ((ticket or {}).get("Queue") or {}).get("Name", "")
            effective = (ticket or {}).get("EffectiveId", sid)
            if isinstance(effective, dict):
                effective = effective.get("id", sid)
            if ticket is None or ticket.get("Status") == "deleted" or queue not in self.config.queues \
                    or str(effective) != sid:
                out[sid] = Change(sid, self._rid(sid), version, None)  # gone, moved, or merged into another
                continue
            record, warnings = ticket_record(self.config, ticket, queue, texts.get(sid, ""))
            out[sid] = Change(sid, record.id, ticket.get("LastUpdated", version), record,
                              created=ticket.get("Created", ""), notes=frozenset(notes.get(sid, ())),
                              warnings=tuple(warnings))
        return [_settled(out[str(it["id"])], upto) for it in items]

    # -- writing -----------------------------------------------------------------------------
    def post_note(self, source_id: str, html_body: str) -> None:
        self.client.call("POST", f"/ticket/{source_id}/comment",
                         body={"Subject": "caselink: related records", "Content": html_body,
                               "ContentType": "text/html"})

    def item_url(self, source_id: str) -> str:
        return f"{self.client.url}/Ticket/Display.html?id={source_id}"

    def source_id(self, record_id: str) -> str | None:
        """The ticket number behind a caselink record id, if it is one of this source's."""
        p = self.config.id_prefix
        rest = record_id[len(p):] if record_id.startswith(p) else ""
        return rest if rest.isdigit() else None

    # -- helpers -----------------------------------------------------------------------------
    def _rid(self, sid: str) -> str:
        return record_id(self.config, sid)

    def _local(self, iso: str) -> str:
        """A UTC ISO time as TicketSQL reads it: in the RT user's time zone."""
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(self.tz)
        return dt.strftime("%Y-%m-%d %H:%M:%S")


def _settled(change: Change, upto: str) -> Change:
    """``change`` with a version that is only ever equal to a later LastUpdated if nothing
    changed. RT's LastUpdated counts whole seconds, so a ticket read in the second it was
    updated can change again with the same LastUpdated: such a version (at or after ``upto``,
    where the next walk starts) is marked unsettled, and the next walk fetches the ticket again
    (unchanged text is then skipped by its hash) instead of taking it for the version applied."""
    if change.version[:1].isdigit() and change.version >= upto:
        return dataclasses.replace(change, version=change.version + UNSETTLED)
    return change


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
