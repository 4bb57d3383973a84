"""Domain errors. Every layer raises these; only ``api/`` maps them to HTTP status codes."""

from __future__ import annotations


class CaselinkError(Exception):
    """Base class. ``field`` names the input at fault when there is one."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(CaselinkError):
    """A setting or config file is invalid."""


class InvalidRecord(CaselinkError):
    """A record failed validation."""


class InvalidQuery(CaselinkError):
    """A search request is malformed (empty text, bad filter, k out of range)."""


class RecordNotFound(CaselinkError):
    """No record with that id."""


class VoteNotFound(RecordNotFound):
    """No stored feedback vote with that id."""


class IndexNotReady(CaselinkError):
    """No index has been built yet, or it is being rebuilt."""


class ServiceClosed(IndexNotReady):
    """The service was closed (a server shutting down): nothing is read or written through it any more."""


class IndexFormatError(CaselinkError):
    """The index on disk is from another version, another model, or corrupt."""


class EncoderUnavailable(CaselinkError):
    """The sentence encoder could not be loaded."""


class LoaderError(CaselinkError):
    """An input file could not be read at all (as opposed to a bad row, which is skipped)."""


class UnsupportedFormat(LoaderError):
    """An input is of a type caselink does not read (an upload's Content-Type, a file suffix)."""


class StoreUnavailable(CaselinkError):
    """The record store's database cannot be reached or cannot take the write now (PostgreSQL
    down, restarting, out of space, a lock held too long): worth retrying, never the caller's fault."""
