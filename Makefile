# caselink: `make run` serves the demo on 127.0.0.1:8000; `make test` runs the test suite.
# Everything installs into .venv; a fresh machine needs only python3 (3.11+) and, for the
# browser test, root for apt-get (Debian chromium + chromium-driver).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run index serve test test-slow browser rt postgres bench bench-quick bench-env relevance clean \
	milvus-core test-milvus-core

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,milvus]'
	rm -f $(VENV)/.installed-*
	touch $@

run: install index serve

index: install
	$(BIN)/caselink index --demo

serve: install
	$(BIN)/caselink serve

browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! fc-list | grep -qi wqy; then \
		echo "installing Debian chromium, chromium-driver and a CJK font for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	fi

# Request Tracker 5 for the connector tests (tests/test_rt.py makes a throwaway RT from it). The
# answers preseeded here stop the packages from setting up a database or web server of their own.
rt:
	@if [ ! -x /usr/share/request-tracker5/libexec/rt-server ] || [ ! -x /usr/sbin/rt-setup-database ]; then \
		echo "installing Debian request-tracker5, rt5-db-sqlite and rt5-standalone for the RT connector tests"; \
		printf '%s\n' 'request-tracker5 request-tracker5/install-dbconfig boolean false' \
			'request-tracker5 request-tracker5/dbconfig-install boolean false' \
			'request-tracker5 request-tracker5/install-cronjobs boolean false' | debconf-set-selections; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			request-tracker5 rt5-db-sqlite rt5-standalone >/dev/null; \
	fi

# The record-store tests start a throwaway PostgreSQL (throwaway/postgres.py) from Debian's server binaries.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		echo "installing Debian postgresql for the record-store tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

test: install browser rt postgres
	$(BIN)/python -m pytest -q

test-slow: install browser rt postgres
	$(BIN)/python -m pytest -q -m slow

relevance: install
	$(BIN)/python -m bench.relevance

# milvus-lite 2.5.1's C++ core (Milvus's own segcore) in a venv of its own: it pins pymilvus 2.5 and
# needs setuptools<81, while the project keeps pymilvus 3 and milvus-lite 3's Python server. Its
# `milvus` program serves gRPC on a loopback port (throwaway/milvus.py: milvus_core_server), so the
# Milvus tests run against it from the project's venv. Not part of `make test`.
CORE := .venv-milvus-core
CORE_PROGRAM = $$($(CORE)/bin/python -c 'import importlib.util as u, os; \
	print(os.path.join(u.find_spec("milvus_lite").submodule_search_locations[0], "lib", "milvus"))')

milvus-core: $(CORE)/.installed

$(CORE)/.installed:
	test -x $(CORE)/bin/python || $(PYTHON) -m venv $(CORE)
	$(CORE)/bin/pip install -q "milvus-lite==2.5.1" "setuptools<81" "pymilvus>=2.5,<2.6"
	@echo "the C++ core's server program: $(CORE_PROGRAM)"
	touch $@

test-milvus-core: install milvus-core
	CASELINK_TEST_MILVUS_CORE=$(CORE_PROGRAM) $(BIN)/python -m pytest -q tests/test_backend_contract.py \
		tests/test_milvus_backend.py tests/test_milvus_service.py tests/test_live_build.py

# Benchmarks run in their own venv (bench/.env) so the peers they compare against (bm25s,
# rank_bm25, txtai) never become caselink dependencies.
BENCH := bench/.env/bin
bench-env: $(BENCH)/.installed

$(BENCH)/.installed: pyproject.toml bench/requirements-peers.txt
	test -x $(BENCH)/python || $(PYTHON) -m venv bench/.env
	$(BENCH)/pip install -q --upgrade pip
	$(BENCH)/pip install -q torch==2.13.0
	$(BENCH)/pip install -q -e '.[test,milvus]' -r bench/requirements-peers.txt
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || echo "no wrk: bench.query falls back to httpx"; }
	touch $@

bench: bench-env
	$(BENCH)/python -m bench.run_all

bench-quick: bench-env
	$(BENCH)/python -m bench.run_all --quick

clean:
	rm -rf var test-artifacts
