"""The index directory: versioned snapshots, a manifest with checksums, atomic swap.

Layout under ``<data_dir>/index/``::

    current -> builds/20261123T131500Z-3f9a   (symlink, replaced atomically)
    builds/<name>/manifest.json
    builds/<name>/vectors.faiss
    builds/<name>/bm25/{data,indices,indptr,doc_len,keys}.npy, vocab.json
    builds/<name>/facets.json

A snapshot is written completely into ``builds/.tmp-<name>``, fsynced, renamed to its final
name, and only then does ``current`` switch to it (``os.replace`` of a symlink is atomic on
POSIX). A crash at any point leaves the previous snapshot serving; leftover ``.tmp-*`` folders and
superseded snapshots are removed by the next writer. See docs/index-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from caselink.errors import IndexFormatError, IndexNotReady

# 2: BM25 saves its delta and deletions (delta_*.npy, alive.npy). 3: vectors may be centred
# (centering.npy): code that does not centre its queries must refuse such a snapshot, not search it.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # 1 is 2 with an empty delta and no deletions; 2 is 3 without centring
MANIFEST = "manifest.json"
REBUILD_HINT = "rebuild it from the record store with: caselink index --rebuild (no sources needed)"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_manifest(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, nested dicts merged key by key (a backend's manifest
    fields over the service's sidecar fields)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge_manifest(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class IndexDir:
    """Creates, publishes, finds and verifies index snapshots under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.builds = self.root / "builds"
        self.current_link = self.root / "current"

    def new_snapshot(self) -> Path:
        """A fresh temporary folder to write a snapshot into."""
        self.builds.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        tmp = self.builds / f".tmp-{name}"
        tmp.mkdir()
        return tmp

    def publish(self, tmp: Path, manifest: dict) -> Path:
        """Checksum the files, write the manifest, fsync, and make ``tmp`` the current snapshot."""
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = dict(manifest, format_version=FORMAT_VERSION,
                        files={str(p.relative_to(tmp)): _sha256(p) for p in files})
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        for p in [*files, tmp / MANIFEST]:
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
        final = self.builds / tmp.name.removeprefix(".tmp-")
        os.rename(tmp, final)
        fsync_dir(self.builds)
        link_tmp = self.root / f".current-{uuid.uuid4().hex[:6]}"
        os.symlink(Path("builds") / final.name, link_tmp)
        os.replace(link_tmp, self.current_link)
        fsync_dir(self.root)
        self.clean()
        return final

    def current(self) -> Path | None:
        if not self.current_link.is_symlink() and not self.current_link.exists():
            return None
        target = self.current_link.resolve()
        return target if target.is_dir() else None

    def clean(self) -> None:
        """Remove temporary folders of interrupted writes and snapshots that are no longer current."""
        if not self.builds.is_dir():
            return
        keep = self.current()
        for child in self.builds.iterdir():
            if keep is not None and child.resolve() == keep:
                continue
            shutil.rmtree(child, ignore_errors=True)
        for child in self.root.glob(".current-*"):
            child.unlink(missing_ok=True)

    def read_manifest(self, *, verify: bool = True) -> tuple[Path, dict]:
        """The current snapshot and its manifest, checked for version and (optionally) checksums."""
        snap = self.current()
        if snap is None:
            raise IndexNotReady(f"no index has been built in {self.root}",
                                hint="build it with: caselink index")
        path = snap / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"index manifest {path} is unreadable: {exc}", hint=REBUILD_HINT) from None
        version = manifest.get("format_version")
        if version not in READABLE_VERSIONS:
            raise IndexFormatError(f"index format version {version} in {snap}, this caselink reads "
                                   f"{', '.join(map(str, READABLE_VERSIONS))}", hint=REBUILD_HINT)
        if verify:
            for name, digest in manifest.get("files", {}).items():
                f = snap / name
                if not f.is_file():
                    raise IndexFormatError(f"index file {f} is missing", hint=REBUILD_HINT)
                if _sha256(f) != digest:
                    raise IndexFormatError(f"index file {f} is corrupt (checksum mismatch)", hint=REBUILD_HINT)
        return snap, manifest
