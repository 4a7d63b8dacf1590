# Two commands for a fresh machine:  `make book`  and  `make test`  (`make check`: the fast
# tests, no build and no browser, for the edit-test loop; `make lab`: the chapters as
# notebooks in JupyterLab).
# Each installs what it needs, once (`make book` the book's requirements.txt, `make test`
# also requirements-test.txt); a second run with nothing changed installs nothing and
# (for `make book`) builds nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := book

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
PIP     := $(BIN)/pip --disable-pip-version-check
# torch comes from PyTorch's CPU wheel index (PyPI's build of the same version pulls several
# GB of CUDA libraries). Another build: `make book TORCH_INDEX=https://download.pytorch.org/whl/cu126`.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN   := $(shell grep -m1 -E '^torch==' requirements.txt)
# An index lookup that fails is retried once, a silent connection abandoned after 15 s: an
# unreachable index costs seconds, not minutes (pip's defaults are 5 retries with back-off).
PIP_NET     ?= --retries 1 --timeout 15
# The small real data (stories260K, its tokenizer and stories, GPT-2's LayerNorms) is built
# into the package (src/numscale/models/data). GPT-2's large tensors (117 MB) are not: when
# this checkout sits beside the project's shared folder, they come from there; without them
# the pages that read them are built as a short page saying what they need.
REFERENCE := $(abspath ../shared/reference)
ifneq ($(wildcard $(REFERENCE)/gpt2_small_attention.npz),)
export NUMSCALE_GPT2 ?= $(REFERENCE)
endif
export PYTHONHASHSEED := 0
# Dates in the site: the last commit's time (reproducible, and true). Outside git the build
# extension dates each page by its file's modification time.
COMMIT_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null)
ifneq ($(COMMIT_EPOCH),)
export SOURCE_DATE_EPOCH ?= $(COMMIT_EPOCH)
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BOOK_SOURCES := _config.yml _toc.yml references.bib requirements.txt \
	$(wildcard book/*.md) $(wildcard src/numscale/*.py) $(wildcard src/numscale/*/*.py) \
	$(wildcard src/numscale/models/data/*) $(wildcard _ext/*.py) $(wildcard _static/*)

.PHONY: book lab test check pdf bench screenshots setup setup-test browser clean FORCE

setup: $(VENV)/.installed node_modules/.installed
setup-test: setup $(VENV)/.installed-test

# Python: the venv, torch's CPU build, the book's pinned requirements, the helper package.
$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(PIP_NET) --index-url $(TORCH_INDEX) "$(TORCH_PIN)"
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# What only the tests need (pytest, hypothesis, playwright, ruff).
$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-test.txt
	@touch $@

# MathJax (served by the built site, so formulas render offline) and axe-core (tests).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests and the PDF (Playwright's own browser download
# fails offline). NUMSCALE_CHROMIUM names another build (CI: Playwright's Chromium).
CHROMIUM := $(or $(NUMSCALE_CHROMIUM),/usr/bin/chromium)
/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
# Poppler's pdftotext/pdfimages, with which the tests read the PDF back.
/usr/bin/pdftotext:
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
browser: $(CHROMIUM) /usr/bin/pdftotext

# Rebuilt only when a source, the config, a data source or the commit changed (the
# downloadable notebooks pin the commit; `make test` tests this build); the build itself
# re-executes only the pages whose code or imported helper modules changed.
HEAD_COMMIT = $$(git rev-parse HEAD 2>/dev/null)
_build/.sources: FORCE
	@mkdir -p _build
	@printf '%s\n' "$${NUMSCALE_GPT2-}" "$${NUMSCALE_TINYSTORIES-}" "$(HEAD_COMMIT)" | cmp -s - $@ \
		|| printf '%s\n' "$${NUMSCALE_GPT2-}" "$${NUMSCALE_TINYSTORIES-}" "$(HEAD_COMMIT)" > $@

# The stamp lives outside _build/html (the folder that gets published). It is removed
# first, so a failed build leaves no stamp claiming the site is current.
_build/.built: $(BOOK_SOURCES) _build/.sources $(VENV)/.installed node_modules/.installed
	@rm -f $@
	$(BIN)/jupyter-book build . --path-output . -n -W --keep-going --builder html
	@touch $@

book: _build/.built

# JupyterLab for `make lab`, in the book's venv, once. -c requirements.txt: installing it
# changes none of the book's pinned packages (ipykernel, nbclient, nbformat...).
$(VENV)/.installed-lab: $(VENV)/.installed
	$(PIP) install --quiet $(PIP_NET) -c requirements.txt jupyterlab
	@touch $@

# The chapters as notebooks in JupyterLab, offline: this build's downloadable notebooks
# (_build/html/_notebooks/book) are copied to _build/notebooks, so the site keeps its own.
# A copy is replaced by this build's unless you changed it (edited, or ran and saved): then
# it is kept and named (delete it for this build's; `make clean` deletes them all).
# _build/notebooks/.as-built holds what was copied, to tell. The kernel is the venv, so
# each notebook's install cell installs nothing.
# Options go to jupyter lab: `make lab LAB_ARGS="--no-browser --port 8899"`.
LAB_ARGS ?=
LAB_DIR  := _build/notebooks
lab: book $(VENV)/.installed-lab
	@mkdir -p $(LAB_DIR)/.as-built; kept=; \
	for nb in _build/html/_notebooks/book/*.ipynb; do \
		name=$${nb##*/}; copy=$(LAB_DIR)/$$name; was=$(LAB_DIR)/.as-built/$$name; \
		if [ ! -e "$$copy" ] || cmp -s "$$copy" "$$was"; then \
			cp "$$nb" "$$copy" && cp "$$nb" "$$was"; \
		elif ! cmp -s "$$copy" "$$nb"; then kept="$$kept $$name"; fi; \
	done; \
	[ -z "$$kept" ] || echo "make lab: kept your changed copies (delete one for this build's):$$kept"
	$(BIN)/jupyter lab --notebook-dir=$(LAB_DIR) $(LAB_ARGS)

# The whole suite in timed phases (tools/run_tests.py): `make book` once, then the unit
# tests, the claims read from that build, the downloaded notebooks, the browser, the PDF and
# a second clean build compared with the first. Parallel phases use one pytest-xdist worker
# per core (NUMSCALE_TEST_WORKERS=N to change). Times go to _build/test-phases.json.
TEST_START := $(shell date +%s.%N)
test: setup-test browser
	$(PY) tools/run_tests.py --started $(TEST_START)

# The fast tests (no build, no browser, no chapter notebooks), on every core.
check: setup-test
	$(PY) -m pytest -n $${NUMSCALE_TEST_WORKERS:-auto} -m "not build and not browser and not notebooks"

# The whole book as one PDF in _build/pdf/ (Chromium prints the single-page build, driven
# by Playwright, which comes with the test requirements).
pdf: setup-test browser
	$(PY) tools/pdf.py

bench: setup-test browser
	$(PY) tools/bench.py
	@mkdir -p _build
	$(PY) tools/bench_inspect.py | tee _build/bench_inspect.json

screenshots: setup-test browser _build/.built
	$(PY) tools/screenshots.py _build/html _build/screenshots

clean:
	rm -rf _build

FORCE:
