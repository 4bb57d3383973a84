"""Run the caselink CLI with an injected fault; the fault tests start this as a child process.

    python tests/_fault_child.py [--fsize BYTES] [--stall-at publish|swap --marker PATH] -- CLI ARGS

``--fsize``: the disk "fills up" at BYTES: RLIMIT_FSIZE caps every file this process writes and
SIGXFSZ is ignored, so a write past the cap fails with EFBIG instead of killing the process.

``--stall-at``: stop at a crash point of snapshot publishing and wait there to be SIGKILLed
(the marker file says where the process is; after 120 s it gives up with exit code 3):

- ``publish``: every snapshot file is written into ``builds/.tmp-*``; nothing renamed yet.
- ``swap``: the snapshot folder is renamed to its final name and the new ``current`` symlink
  is made, but not yet swapped in.

Nothing in the code under test is changed on disk; the patches live in this process only.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import threading
from pathlib import Path

STALL_LIMIT_S = 120


def _stall(marker: Path, where: str) -> None:
    marker.write_text(where, encoding="utf-8")
    threading.Event().wait(STALL_LIMIT_S)  # the parent kills us long before
    os._exit(3)


def _install_stall(point: str, marker: Path) -> None:
    import indexing.index_dir as index_dir

    if point == "publish":
        real_publish = index_dir.IndexDir.publish

        def publish(self, tmp, manifest):
            _stall(marker, str(tmp))
            return real_publish(self, tmp, manifest)  # pragma: no cover - never reached

        index_dir.IndexDir.publish = publish
    else:
        class _Os:
            """os for indexing.index_dir only: stalls in the replace() that swaps `current`."""

            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(src, dst):
                if Path(dst).name == "current":
                    _stall(marker, f"{src} -> {dst}")
                return os.replace(src, dst)  # pragma: no cover - never reached

        index_dir.os = _Os()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--stall-at", choices=("publish", "swap"))
    parser.add_argument("--marker", type=Path)
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    cli_args = ns.cli[1:] if ns.cli[:1] == ["--"] else ns.cli
    if ns.fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (ns.fsize, hard))
    if ns.stall_at:
        _install_stall(ns.stall_at, ns.marker)
    from caselink.cli import app

    app(args=cli_args, prog_name="caselink")


if __name__ == "__main__":
    main(sys.argv[1:])
