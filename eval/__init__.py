"""Measures: relevance against labeled pairs, with the benchmark protocol and reference baselines.

The relevance harness, in the order data flows through it:

- :mod:`eval.datasets`: ``EvalRecord``/``Pair`` and the JSONL/CSV/TSV loaders;
- :mod:`eval.links`: labeled pairs from caselink record links and feedback;
- :mod:`eval.protocol`: queries, relevant sets and candidates (``shared/benchmarks/README.md``);
- :mod:`eval.retrievers`: the ``Retriever`` interface and shared top-k selection;
- :mod:`eval.baselines`: TF-IDF, USE dense and naive RRF reference retrievers;
- :mod:`eval.metrics`, :mod:`eval.scores`: ranking metrics, bootstrap CIs, F1 thresholds;
- :mod:`eval.runner`: ``evaluate()`` -> ``EvalResult``; :mod:`eval.report`: Markdown + plots;
- :mod:`eval.reference`: ``python -m eval.reference``, the baselines on all benchmark sets.

Nothing heavy is imported here; import the submodule you need.
"""
