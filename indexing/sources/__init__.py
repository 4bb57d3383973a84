"""Sources: ticketing systems caselink keeps in step with, one module per system.

A source turns its system's changes into records; it never writes to caselink itself. The
loop that applies changes (upserts, deletes, the related-records note) is
:class:`recommender.sync.Syncer`, the same for every source, so a second system (Jira, Zendesk,
a ServiceNow export) is one more module here implementing :class:`Source`, and one entry in
:func:`open_sources`.

Contract, in the order the syncer relies on it:

- :meth:`Source.check` raises :class:`SourceError` naming what to fix (URL, token, queue,
  field) before anything is written.
- :meth:`Source.pull` yields batches of changes made since a watermark, oldest first. Each
  batch carries the watermark to resume from once it is applied; applying a batch twice is
  harmless (writes are idempotent), so a restart of either side after any batch loses nothing
  and duplicates nothing.
- A change whose ``record`` is None means: deleted at the source, or out of the synced scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from caselink.errors import CaselinkError
from indexing.records import Record

if TYPE_CHECKING:
    from caselink.config import Settings


# Ends every note caselink posts, followed by the note's content hash: a source finds the notes
# already on an item by it, so a note is never posted twice, even when the local state is lost.
NOTE_MARK = "caselink note"


class SourceError(CaselinkError):
    """The source system could not be read or written: unreachable, refused, misconfigured."""


@dataclass(frozen=True)
class Change:
    source_id: str  # the item's id in the source system (an RT ticket number)
    record_id: str  # its caselink record id
    version: str  # the source's version of it (RT: LastUpdated); unchanged version = nothing to fetch
    record: Record | None  # None: deleted at the source, or out of the synced scope
    created: str = ""  # when the item was created at the source (ISO 8601), for "new item" decisions
    notes: frozenset[str] = frozenset()  # hashes of the caselink notes already on the item
    warnings: tuple[str, ...] = ()  # "RT-12: why", what of the item could not be kept (the rest is applied)


@dataclass(frozen=True)
class Batch:
    changes: list[Change]
    watermark: str  # resume from here once these changes are applied


class Source(Protocol):
    name: str  # the state key and the CLI name: "rt"

    def check(self) -> None:
        """Raise :class:`SourceError` when the source is unreachable or misconfigured."""

    def pull(self, watermark: str | None, known: Callable[[str], str | None]) -> Iterator[Batch]:
        """Changes since ``watermark`` (None: everything). ``known(source_id)`` is the version
        last applied, so an unchanged item is not fetched again."""

    def present(self) -> set[str]:
        """Source ids of every item in scope now: what a reconciliation keeps."""

    def post_note(self, source_id: str, html: str) -> None:
        """Show ``html`` to the engineers on the item, privately (RT: a comment, never mail to
        the requester)."""

    def item_url(self, source_id: str) -> str:
        """The item's own page in the source system."""

    def source_id(self, record_id: str) -> str | None:
        """The source's id behind a caselink record id, if the record is one of this source's."""

    def close(self) -> None:
        ...


def open_sources(settings: Settings, *, env: dict[str, str] | None = None) -> list[Source]:
    """The sources configured in ``settings`` (``[sources.*]``), not yet checked or contacted."""
    out: list[Source] = []
    if settings.sources.rt is not None:
        from indexing.sources.rt import RTSource

        out.append(RTSource.from_config(settings.sources.rt, env=env))
    return out
