"""The bundled demo history: a fictional semiconductor-equipment maker's cases, problem orders and SOPs.

Files: ``cases.jsonl`` and ``problems.jsonl`` (records in the caselink record model), ``sops/``
(Markdown SOP documents, one record per ``##`` section), ``pairs.tsv`` (labeled pairs for
``caselink eval``; regenerate with ``python -m indexing.demo.make_pairs``).
"""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent


def demo_sources() -> list[Path]:
    """The demo's record files and SOP folder, in load order."""
    return [DEMO_DIR / "problems.jsonl", DEMO_DIR / "cases.jsonl", DEMO_DIR / "sops"]


def demo_pairs() -> Path:
    return DEMO_DIR / "pairs.tsv"
