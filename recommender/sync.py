"""Keeping caselink in step with a source (indexing/sources), and showing related records there.

:class:`Syncer` applies a source's batches through the service's public writes, then records
what it applied in :class:`~indexing.sources.state.SourceState`. Order per batch: write the
records, post the notes, record the versions, move the watermark. A crash between any two steps
is repaired by the next run: the batch is read again, the writes are idempotent (an unchanged
record changes nothing), and a note already on the item (its hash is in the text) is not posted
again.

The note: for an item created after the source was first synced, when it arrives and whenever its
text changes, the related cases, open problem orders and SOP sections with their reasons and links to caselink's
page (where votes count). :class:`SyncLoop` runs a syncer in ``caselink serve``.
"""

from __future__ import annotations

import hashlib
import html
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

from caselink.errors import CaselinkError
from indexing.records import Record, require_content
from indexing.sources import NOTE_MARK, Batch, Change, Source
from indexing.sources.state import SourceState
from recommender.results import SearchResult
from recommender.service import CaselinkService

log = logging.getLogger("caselink.sync")

# Groups in a note: (heading, kinds, open only).
NOTE_GROUPS = (("Related cases", "case", False), ("Open problem orders", "problem", True),
               ("SOP sections", "sop", False))
SyncProgress = Callable[[str, int], None]  # (what, how many more), e.g. ("tickets", 100)


@dataclass
class SyncReport:
    upserted: int = 0  # records written (new or changed)
    written: list[str] = field(default_factory=list)  # their ids
    unchanged: int = 0  # fetched again, nothing to write
    deleted: int = 0
    notes: int = 0  # notes posted
    skipped: list[str] = field(default_factory=list)  # "RT-12: why", items that could not be stored
    warnings: list[str] = field(default_factory=list)  # "RT-12: why", parts of stored items left out
    seconds: float = 0.0


class Syncer:
    """One source into one service. ``page_url`` is caselink's page as engineers reach it."""

    def __init__(self, svc: CaselinkService, source: Source, state: SourceState, *, notes: bool,
                 note_k: int, page_url: str):
        self.svc = svc
        self.source = source
        self.state = state
        self.notes = notes
        self.note_k = note_k
        self.page_url = page_url.rstrip("/")
        self._checked = False

    def run_once(self, *, full: bool = False, progress: SyncProgress | None = None) -> SyncReport:
        """Pull and apply every change since the stored watermark (``full``: read every item and
        delete those the source no longer has)."""
        t0 = time.perf_counter()
        name = self.source.name
        if not self._checked:
            self.source.check()
            self._checked = True
        if self.state.setting(name, "notes_from") is None:
            # Items that existed before the first sync are history, not new tickets: no notes.
            self.state.set_setting(name, "notes_from", _now())
        report = SyncReport()
        if full:
            self._reconcile(report)
            self.state.set_watermark(name, "")
        for batch in self.source.pull(self.state.watermark(name) or None, lambda sid: self.state.version(name, sid)):
            self._apply(batch, report)
            self.state.set_watermark(name, batch.watermark)
            if progress and batch.changes:
                progress("tickets", len(batch.changes))
        report.seconds = time.perf_counter() - t0
        return report

    def _reconcile(self, report: SyncReport) -> None:
        name = self.source.name
        present = self.source.present()
        gone = [it for it in self.state.items(name) if it.source_id not in present]
        if gone:
            deleted, _ = self.svc.delete_many([it.record_id for it in gone])
            report.deleted += len(deleted)
            for it in gone:
                self.state.forget(name, it.source_id)

    def _apply(self, batch: Batch, report: SyncReport) -> None:
        name = self.source.name
        good: list[Change] = []
        for c in batch.changes:
            if c.record is None:
                continue
            try:
                require_content(c.record, where=f"{name} {c.source_id}")
                good.append(c)
                report.warnings += c.warnings
                for warning in c.warnings:
                    log.warning("%s", warning)
            except CaselinkError as exc:  # an empty ticket: its stored copy, if any, stays
                report.skipped.append(f"{c.record_id}: {exc.message}")
                log.warning("skipped %s", exc.message)
        gone = [c for c in batch.changes if c.record is None]
        if good:
            outcomes = self.svc.upsert([c.record for c in good])
            report.upserted += sum(o.changed for o in outcomes)
            report.written += [o.id for o in outcomes if o.changed]
            report.unchanged += sum(not o.changed for o in outcomes)
        if gone:
            deleted, _ = self.svc.delete_many([c.record_id for c in gone])
            report.deleted += len(deleted)
        notes_from = self.state.setting(name, "notes_from") or ""
        for c in good:
            before = self.state.item(name, c.source_id)
            text = _text_hash(c.record)
            if self.notes and c.created >= notes_from and (before is None or before.text_hash != text):
                report.notes += self._note(c, before.note_hash if before else "")
            self.state.applied(name, c.source_id, c.record_id, c.version, text)
        for c in gone:
            self.state.forget(name, c.source_id)

    # -- the note ------------------------------------------------------------------------------
    def _note(self, c: Change, last_hash: str) -> int:
        groups = []
        for heading, kind, open_only in NOTE_GROUPS:
            try:
                resp = self.svc.related(c.record_id, k=self.note_k, kinds=[kind], open_only=open_only)
            except CaselinkError as exc:
                log.warning("no related %s for %s: %s", kind, c.record_id, exc)
                continue
            groups.append((heading, resp.results))
        digest = _note_hash(groups)
        if digest == last_hash or digest in c.notes:
            return 0
        self.source.post_note(c.source_id, self.note_html(c.record, groups, digest))
        self.state.noted(self.source.name, c.source_id, digest)
        return 1

    def note_html(self, record: Record, groups: list[tuple[str, list[SearchResult]]], digest: str) -> str:
        """The note's HTML, ending with its content hash (how a repeat is recognised)."""
        e = html.escape
        page = self.page_url
        parts = [f'<p><b>caselink: related records</b> for {e(record.id)} &middot; '
                 f'<a href="{e(page)}/?related={quote(record.id)}">open in caselink</a> '
                 "to mark suggestions helpful or not</p>"]
        for heading, results in groups:
            parts.append(f"<p><b>{e(heading)}</b></p>")
            if not results:
                parts.append("<p>none found</p>")
                continue
            items = []
            for r in results:
                sid = self.source.source_id(r.id)
                own = f' (<a href="{e(self.source.item_url(sid))}">ticket</a>)' if sid else ""
                status = f" [{e(r.status)}]" if r.status else ""
                items.append(f'<li><a href="{e(page)}/?related={quote(r.id)}">{e(r.id)}</a>{own} '
                             f"{e(r.title)}{status} &middot; score {r.score:.2f} &middot; "
                             f"{e(r.explanation.reason)}</li>")
            parts.append("<ul>" + "".join(items) + "</ul>")
        parts.append(f'<p style="color:#888;font-size:smaller">{NOTE_MARK} {digest}</p>')
        return "\n".join(parts)


class SyncLoop:
    """Runs a syncer every ``every`` seconds in a thread until :meth:`stop`; a failed run is
    logged and retried with backoff (up to 10 minutes), never fatal to the server."""

    def __init__(self, syncer: Syncer, *, every: float):
        self.syncer = syncer
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last_error: str | None = None

    def start(self) -> "SyncLoop":
        self._thread = threading.Thread(target=self._run, name=f"sync-{self.syncer.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        wait, full = self.every, True  # the first run reconciles: deletions missed while down
        while not self._stop.is_set():
            try:
                r = self.syncer.run_once(full=full)
                full, wait, self.last_error = False, self.every, None
                if r.upserted or r.deleted or r.notes or r.skipped:
                    log.info("%s sync: %d written, %d deleted, %d notes, %d skipped in %.1f s",
                             self.syncer.source.name, r.upserted, r.deleted, r.notes, len(r.skipped), r.seconds)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next run resumes from the watermark
                self.last_error = str(exc)
                log.error("%s sync failed: %s", self.syncer.source.name, exc)
                wait = min(max(wait * 2, self.every), 600.0)
            self.runs += 1
            self._stop.wait(wait)


def start_sources(svc: CaselinkService) -> Callable[[], None]:
    """Start a sync loop per configured source; returns the function that stops them all.
    A source that cannot even be opened (no token) is logged and left out."""
    from indexing.sources import open_sources

    settings = svc.settings
    loops: list[SyncLoop] = []
    state: SourceState | None = None
    try:
        sources = open_sources(settings)
    except CaselinkError as exc:
        log.error("sources not started: %s", exc)
        sources = []
    if sources:
        state = SourceState(settings.sources_path).open()
    for source in sources:
        loops.append(SyncLoop(make_syncer(svc, source, state), every=source_config(settings, source).interval_seconds)
                     .start())

    def stop() -> None:
        for loop in loops:
            loop.stop()
        for loop in loops:
            loop.syncer.source.close()
        if state is not None:
            state.close()

    return stop


def source_config(settings, source: Source):
    return getattr(settings.sources, source.name)


def make_syncer(svc: CaselinkService, source: Source, state: SourceState, *, notes: bool | None = None) -> Syncer:
    cfg = source_config(svc.settings, source)
    server = svc.settings.server
    page = cfg.page_url or f"http://{server.host}:{server.port}"
    return Syncer(svc, source, state, notes=cfg.comment if notes is None else notes, note_k=cfg.comment_k,
                  page_url=page)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_hash(r: Record) -> str:
    return hashlib.sha256(f"{r.title}\n{r.text}".encode("utf-8")).hexdigest()[:16]


def _note_hash(groups: list[tuple[str, list[SearchResult]]]) -> str:
    key = "|".join(f"{h}:" + ",".join(r.id for r in results) for h, results in groups)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
