# Set-up and everyday commands. Every target creates or reuses the virtual environment in .venv,
# installing torch==2.13.0 (CPU) first: a bare `torch` requirement would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imdenoise-installed
EXTRAS ?= dev,server,bm3d,export

.PHONY: install demo test test-slow browser lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

## The main job on a shipped default: denoise a bundled sample image and write a before/after figure.
demo: $(STAMP)
	$(VENV)/bin/imdenoise demo --output demo-output

## Static checks (config in pyproject.toml): ruff (pyflakes, pycodestyle, bugbear, import order), the layer
## contracts of import-linter (nothing imports upward), and mypy on src/.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## The fast test suite (what CI runs): lint, then everything but tests marked slow.
test: $(STAMP) browser lint
	$(PY) -m pytest -m "not slow" -n 2 --timeout 600

## Slow tests: full datasets, longer training runs, big images.
test-slow: $(STAMP) browser
	$(PY) -m pytest -m slow --timeout 3600

## Headless Chromium for the end-to-end web test (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
