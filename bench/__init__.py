"""caselink performance benchmarks: one command per benchmark, results as Markdown tables in bench/.

Each module runs as ``python -m bench.<name> [--sizes 10000,100000] [--out bench/<name>.md]`` and
writes its table file with the machine header from :mod:`bench.machine`; ``python -m bench.run_all``
runs them all. Generated corpora, data directories and vector samples go to ``bench/work/``
(git-ignored). Nothing here is a unit test: the tables report, they never assert.
"""
