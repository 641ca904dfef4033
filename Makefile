# Two commands work on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JAEGER := .cache/jaeger/jaeger
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck pytest e2e soak bench prometheus jaeger dashboards clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m httpmgr demo

# Real Prometheus (and promtool) for the end-to-end tests: the Debian package.
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

# Real Jaeger v2, built once from the Go module proxy into an ignored folder.
$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum
	cd tools/jaeger && go build -o ../../$(JAEGER) github.com/jaegertracing/jaeger/cmd/jaeger

jaeger: $(JAEGER)

dashboards: $(STAMP)
	$(PY) dashboards/generate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) prometheus jaeger
	$(PY) -m pytest -n 2 --dist loadgroup

e2e: $(STAMP) prometheus jaeger
	$(PY) -m pytest tests/e2e

test: lint typecheck pytest

# The long soak: 100,000 requests across the three client kinds with server restarts.
soak: $(STAMP)
	HTTPMGR_SOAK_REQUESTS=100000 $(PY) -m pytest -m soak -s -p no:xdist tests/faults/test_soak.py

# Side-by-side benchmarks; writes BENCHMARKS.md (about 20 minutes on 2 cores).
bench: $(STAMP)
	$(PY) -m benchmarks --write

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
