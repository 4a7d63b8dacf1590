# Two commands for a fresh machine:  `make book`  and  `make test`.
# Everything they need is installed here, once; a second run with nothing changed
# installs nothing and (for `make book`) builds nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := book

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
# Real GPT-2 tensors, when this checkout sits beside the project's shared folder.
REFERENCE := $(abspath ../shared/reference)
ifneq ($(wildcard $(REFERENCE)/gpt2_small_layernorm.npz),)
export NUMSCALE_GPT2 ?= $(REFERENCE)
endif
export PYTHONHASHSEED := 0
export SOURCE_DATE_EPOCH := 1767225600
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BOOK_SOURCES := _config.yml _toc.yml references.bib requirements.txt \
	$(wildcard book/*.md) $(wildcard src/numscale/*.py) $(wildcard _ext/*.py) $(wildcard _static/*)

.PHONY: book test bench screenshots setup browser clean FORCE

setup: $(VENV)/.installed node_modules/.installed

# Python: the venv, pinned requirements, and the helper package (editable).
$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# MathJax (served by the built site, so formulas render offline) and axe-core (tests).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download fails offline).
/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
browser: /usr/bin/chromium

# Rebuilt only when a source, the config or the GPT-2 source changed; the build itself
# re-executes only the pages whose code or imported helper modules changed.
_build/.gpt2-source: FORCE
	@mkdir -p _build
	@echo "$${NUMSCALE_GPT2-}" | cmp -s - $@ || echo "$${NUMSCALE_GPT2-}" > $@

_build/html/.built: $(BOOK_SOURCES) _build/.gpt2-source $(VENV)/.installed node_modules/.installed
	$(BIN)/jupyter-book build . --path-output . -n -W --keep-going --builder html
	@touch $@

book: _build/html/.built

test: setup browser
	$(PY) -m pytest

bench: setup
	$(PY) tools/bench.py

screenshots: setup browser _build/html/.built
	$(PY) tools/screenshots.py _build/html _build/screenshots

clean:
	rm -rf _build

FORCE:
