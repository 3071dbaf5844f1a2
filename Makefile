# Two commands do all the set-up: `make run` (what the evaluation needs, then the demo) and `make test`
# (that plus the test tools and the peers the tests compare against). Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
DEMO := runs/demo

.PHONY: run test lint bench clean report screenshot

$(RUN_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Pin torch first: here this takes the CPU build from local disk; an unpinned torch would pull a
	# multi-GB CUDA build. (On a GPU machine the same pin gives the CUDA build from PyPI.)
	# --no-compile: Python writes the bytecode of what it imports, when it imports it, instead of pip
	# compiling every module of every package up front (about 380 MB of the venv, mostly never used).
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m pip install -q --no-compile -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install -q -e '.[test,lucene]'
	touch $@

run: $(RUN_STAMP)
	$(BIN)/gtr-eval run -m bm25 -m all-MiniLM-L6-v2 -d demo --results-dir $(DEMO)
	@echo
	@echo "Results: $(DEMO)/<system>/demo.json (metrics, per-query scores, how they were made), run files beside them."
	@echo "Next:"
	@echo "  source .venv/bin/activate    # puts gtr-eval on the PATH (or call .venv/bin/gtr-eval)"
	@echo "  gtr-eval table --results-dir $(DEMO) --metric ndcg@10 --baseline bm25"
	@echo "  gtr-eval run -m ./my-model -d ~/beir/scifact --results-dir runs/mine --plan"
	@echo "  README.md, 'Your model on your data', says what each folder holds."

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Two workers, each test module on one (its fixtures built once; tests/conftest.py).
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run_all.py

# The results site of the committed results, and the README's screenshot of it (headless Chromium:
# `apt-get install chromium`).
report: $(RUN_STAMP)
	$(BIN)/gtr-eval report --results-dir results --output build/report

screenshot: report
	profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && \
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --user-data-dir="$$profile" --hide-scrollbars \
	  --force-device-scale-factor=1 --window-size=1100,820 --screenshot=docs/report-leaderboard.png \
	  "file://$(CURDIR)/build/report/index.html"

clean:
	rm -rf $(DEMO) .pytest_cache build/report  # runs/ holds your own results: only the demo's go
