"""``caselink train``: fit the learned ranker on the organisation's own labels and save it next
to the index, where ``caselink search``, ``related`` and ``serve`` pick it up."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from caselink.errors import CaselinkError, InvalidQuery

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (TOML).", show_default=False)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where records and the index live.",
                                                    show_default=False)]


def _stored_labels(settings, use_links: bool) -> tuple[set[str], list[tuple[str, str, int]]]:
    """Every stored id, and the pairs the store's links and feedback votes give."""
    from eval.links import pairs_from_links
    from indexing.store import RecordStore

    with RecordStore.existing(settings.store_url) as store:
        records = [sr.record for sr in store.iter_records()]
        feedback = [(f.query_id, f.record_id, f.helpful) for f in store.feedback() if f.query_id]
    known = {r.id for r in records}
    if not use_links:
        return known, []
    return known, pairs_from_links(records, feedback)


def _file_pairs(path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    from eval.datasets import load_pairs

    if not path.is_file():
        raise InvalidQuery(f"--pairs file {path} does not exist", field="--pairs")
    out = []
    for n, p in enumerate(load_pairs(path), 2):  # line 1 is the header
        for name, value in (("id_a", p.id_a), ("id_b", p.id_b)):
            if value not in known:
                raise InvalidQuery(f"{path}:{n}: field '{name}': '{value}' is not a stored record "
                                   "(index the records first)", field="--pairs")
        out.append((p.id_a, p.id_b, int(p.label)))
    return out


def train_command(
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Also learn from these labeled pairs (id_a, "
                                                                  "id_b, label; TSV/CSV, the eval format).",
                                                  show_default=False)] = None,
    links: Annotated[bool, typer.Option("--links/--no-links", help="Learn from the stored records' links and "
                                                                   "feedback votes.")] = True,
    holdout: Annotated[float, typer.Option("--holdout", help="Share of labeled components kept out of training "
                                                             "to measure the model on (0 = none).")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the splits.")] = 13,
    max_queries: Annotated[int, typer.Option("--max-queries", help="Train on at most this many queries.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the model's figures as JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fit the learned ranker (LightGBM lambdarank) on links, feedback and --pairs; save it beside the index."""
    from caselink.cli.common import err, out
    from caselink.cli.common import progress_bars as _progress
    from caselink.cli.common import settings_from as _settings
    from recommender.learned import ranker_path
    from recommender.service import CaselinkService
    from recommender.splits import split_by_component
    from recommender.training import held_out, train

    settings = _settings(config, data_dir)
    if not 0.0 <= holdout < 1.0:
        raise InvalidQuery(f"--holdout expects a share from 0 up to (not including) 1, got {holdout}",
                           field="--holdout")
    if max_queries < 4:
        raise InvalidQuery(f"--max-queries expects at least 4, got {max_queries}", field="--max-queries")
    known, labeled = _stored_labels(settings, links)
    if pairs is not None:
        labeled = labeled + _file_pairs(pairs, known)
    if not any(label == 1 for _, _, label in labeled):
        raise CaselinkError("no labels to learn from: the stored records have no links or feedback"
                            + (" and --pairs has no label-1 pair" if pairs else ""),
                            hint="link cases to their problem orders and SOP sections, vote with caselink "
                                 "feedback, or give --pairs")
    train_pairs, test_pairs = (split_by_component(labeled, 1.0 - holdout, seed) if holdout > 0
                               else (labeled, []))
    svc = CaselinkService.open(settings)
    try:
        t0 = time.perf_counter()
        with _progress() as bars:
            task = bars.add_task("rank", total=None)
            model = train(svc, train_pairs, max_queries=max_queries, seed=seed,
                          progress=lambda done, total: bars.update(task, completed=done, total=total),
                          info={"sources": {"links": links, "pairs": str(pairs) if pairs else None},
                                "seed": seed, "holdout": holdout})
        model.info["train_seconds"] = round(time.perf_counter() - t0, 2)
        if test_pairs:
            test = held_out(svc, model, test_pairs)
            model.info["test"] = test
            if test:
                # Used by default only when its gain is credible on components it never saw, too.
                v = model.info["validation"]
                if v["passed"] and not test["passed"]:
                    v["passed"], v["reason"] = False, f"held out: {test['reason']}"
            else:
                model.info["validation"].update(passed=False, reason="held out: no query found a relevant record")
        path = model.save(ranker_path(settings))
    finally:
        svc.close()
    if as_json:
        sys.stdout.write(json.dumps({"path": str(path), "depth": model.depth, **model.info}, ensure_ascii=False) + "\n")
        return
    info, v = model.info, model.info["validation"]
    out.print(f"trained on {info['queries']} queries ({info['pairs']} related pairs) in {info['train_seconds']} s; "
              f"saved {path}", highlight=False)
    out.print(f"validation ({info['valid_queries']} queries): MRR@10 learned {v['mrr@10_learned']:.3f}, "
              f"hybrid {v['mrr@10_hybrid']:.3f}; calibration error {v['ece@10']:.3f}", highlight=False)
    depth = "whole candidate lists" if model.depth == 0 else f"the first {model.depth} candidates"
    # One line however long (soft_wrap): the sentence says why, and a grep for it should find it whole.
    out.print(f"model: {info['trees']}; trained on {depth} (rank.learned_depth = {model.depth})", highlight=False,
              soft_wrap=True)
    if info.get("test"):
        t = info["test"]
        out.print(f"held out ({t['queries']} queries never trained on): MRR@10 learned {t['mrr@10_learned']:.3f}, "
                  f"hybrid {t['mrr@10_hybrid']:.3f}; calibration error {t['ece@10']:.3f}", highlight=False)
    if model.passed:
        out.print("passed: searches and related records now use it (rank.learned = auto; mode=hybrid asks for "
                  "the old ranking)", highlight=False)
    else:
        err.print(f"no credible gain over hybrid ({model.info['validation']['reason']}), so it is not used by "
                  "default; mode=learned still asks for it", highlight=False)
        if hint := more_labels_hint(info, holdout):
            err.print(hint, highlight=False, soft_wrap=True)


def more_labels_hint(info: dict, holdout: float) -> str | None:
    """What to do when a model was refused for too few validation queries: how many labeled
    queries a verdict needs at this split (None when validation had enough)."""
    from recommender.training import MIN_VERDICT_QUERIES

    valid, labeled = info.get("valid_queries", 0), info.get("labeled_queries", 0)
    if valid >= MIN_VERDICT_QUERIES or not labeled:
        return None
    # Validation gets a share of the components of the training side, which is 1 - holdout of all.
    share = max(valid, 1) / labeled * (1.0 - holdout)
    need = int(-(-MIN_VERDICT_QUERIES // share))
    return (f"too few labels to judge: {valid} validation queries of {labeled} labeled ones; a verdict needs "
            f"{MIN_VERDICT_QUERIES}, about {need} labeled queries at this split (records linked to at least one "
            f"other, or voted on). On the public benchmark sets a model began to gain from about 300 related pairs "
            f"(README, \"Train on your own labels\").")
