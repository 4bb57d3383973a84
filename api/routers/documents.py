"""SOP documents as files: PUT one (Markdown, text, HTML, PDF or DOCX) to replace all its sections,
GET its sections, DELETE it.

A document is the unit its authors revise, so a PUT replaces it whole: sections it no longer has are
deleted, and an outdated step is never suggested again. The body is the file itself, typed by its
``Content-Type`` (or ``?format=``); nothing beyond the loaders used by ``caselink index`` reads it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.deps import ReadAccess, ServiceDep, WriteAccess
from api.schemas import PROBLEM_RESPONSES, DocumentOut, DocumentPutOut, Problem, SectionOut, SectionTextOut
from caselink.errors import InvalidRecord, LoaderError, UnsupportedFormat
from caselink.types import NOT_SPACE, SPACE
from indexing.loaders import load_sop_bytes
from indexing.records import ID_PATTERN, ID_RULE, Record
from recommender.service import CaselinkService

router = APIRouter(tags=["documents"])

# Its sections are records '{doc_id}#{n}', so a doc_id follows the record id rule with room for '#n'.
DOC_ID_MAX = 190
DocId = Annotated[str, Path(min_length=1, max_length=DOC_ID_MAX, json_schema_extra={"pattern": ID_PATTERN},
                            description=f"The SOP's doc_id, e.g. 'SOP-VAC-005': {ID_RULE}, at most {DOC_ID_MAX}.")]
Format = Literal["md", "txt", "html", "pdf", "docx"]
_TYPES: dict[str, str] = {
    "text/markdown": "md", "text/x-markdown": "md", "text/plain": "txt", "text/html": "html",
    "application/pdf": "pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
# Text types as text with something to read (HTML: outside its tags), the others as bytes; an
# empty or blank file is refused (400), it would otherwise delete every section.
_TEXT = {"type": "string", "pattern": NOT_SPACE}
_SCHEMAS = {"md": _TEXT, "txt": _TEXT, "html": {"type": "string", "pattern": rf"(^|>)[^<]*[^<{SPACE}]"},
            "pdf": {"type": "string", "format": "binary", "minLength": 1},
            "docx": {"type": "string", "format": "binary", "minLength": 1}}
_BODY = {"required": True, "description": "The file, not empty.",
         "content": {t: {"schema": _SCHEMAS[fmt]} for t, fmt in _TYPES.items()}}


def _format_of(content_type: str, given: str | None) -> tuple[str, str]:
    """(file suffix, text encoding) from ``?format=`` or the Content-Type and its charset."""
    mime, _, params = content_type.partition(";")
    charset = next((v.strip().strip('"') for k, _, v in (p.partition("=") for p in params.split(";"))
                    if k.strip().lower() == "charset" and v.strip()), "auto")
    fmt = given or _TYPES.get(mime.strip().lower())
    if fmt is None:
        raise UnsupportedFormat(f"Content-Type '{mime.strip() or '(none)'}' is not a document type caselink reads",
                                field="Content-Type",
                                hint="send text/markdown, text/plain, text/html, application/pdf or a .docx type, "
                                     "or add ?format=md|txt|html|pdf|docx")
    return "." + fmt, charset


def _title(doc_id: str, records: list[Record]) -> str:
    return records[0].doc_title if records and records[0].doc_title else doc_id


def _put(svc: CaselinkService, doc_id: str, data: bytes, suffix: str, encoding: str) -> tuple[DocumentPutOut, bool]:
    result = load_sop_bytes(data, doc_id=doc_id, suffix=suffix, encoding=encoding)
    if result.skipped:  # all or nothing, as for a batch of records
        bad = result.skipped[0]
        raise InvalidRecord(f"section {bad.row}: {bad.message}; nothing was stored",
                            field=f"sections.{bad.row}.{bad.field}" if bad.field else f"sections.{bad.row}")
    outcomes, removed = svc.put_document(doc_id, result.records, result.documents[doc_id])
    created = sum(o.created for o in outcomes)
    updated = sum(o.changed and not o.created for o in outcomes)
    out = DocumentPutOut(doc_id=doc_id, title=_title(doc_id, result.records),
                         sections=[SectionOut(id=r.id, section=r.section) for r in result.records],
                         created=created, updated=updated, unchanged=len(outcomes) - created - updated,
                         removed=removed, warnings=result.warnings)
    return out, created == len(outcomes) and not removed  # nothing of it was stored before


@router.put("/documents/{doc_id}", response_model=DocumentPutOut, dependencies=[WriteAccess],
            openapi_extra={"requestBody": _BODY},
            responses={201: {"model": DocumentPutOut, "description": "Created"}, **PROBLEM_RESPONSES,
                       415: {"model": Problem, "description": "Not a document type caselink reads"}},
            summary="Create or replace an SOP document from its file")
async def put_document(doc_id: DocId, request: Request, svc: ServiceDep, response: Response,  # type: ignore[valid-type]
                       format: Annotated[Format | None, Query(description="The file type, when the "
                                                              "Content-Type does not say.")] = None
                       ) -> DocumentPutOut:
    """The body is the file. Sections become records ``{doc_id}#{n}``, searchable when the call
    returns; stored sections the file no longer has are deleted (``removed``). 201 when the
    document is new. Front matter naming another doc_id is refused."""
    suffix, encoding = _format_of(request.headers.get("content-type", ""), format)
    data = await request.body()
    if not data:
        raise LoaderError("the request body is empty: send the document file", field="body")
    out, created = await run_in_threadpool(_put, svc, doc_id, data, suffix, encoding)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out


@router.get("/documents/{doc_id}", response_model=DocumentOut, dependencies=[ReadAccess],
            responses=PROBLEM_RESPONSES, summary="An SOP document's sections")
def get_document(doc_id: DocId, svc: ServiceDep) -> DocumentOut:  # type: ignore[valid-type]
    records = svc.document(doc_id)
    return DocumentOut(doc_id=doc_id, title=_title(doc_id, records),
                       sections=[SectionTextOut(id=r.id, section=r.section, text=r.text) for r in records])


@router.delete("/documents/{doc_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAccess],
               response_class=Response, responses=PROBLEM_RESPONSES, summary="Delete an SOP document")
def delete_document(doc_id: DocId, svc: ServiceDep) -> Response:  # type: ignore[valid-type]
    svc.delete_document(doc_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
