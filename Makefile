# streamfeat: two commands, `make demo` and `make test`. Everything else hangs off `install`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install browser postgres demo test test-slow bench lint docs clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,train,postgres,cluster,report,parquet]'
	touch $(STAMP)

demo: install
	$(PY) -m streamfeat demo

# headless chromium for the browser tests (installed once; they skip without it)
browser:
	bash tests/install_chromium.sh

# PostgreSQL server binaries for the endpoint-on-PostgreSQL tests (they skip, saying so, without)
postgres:
	bash .ci/setup_postgres.sh || echo "PostgreSQL could not be installed: its tests will skip and say so"

test: install postgres browser
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	bash bench/setup_mqtt.sh || echo "mosquitto could not be installed: the MQTT rows will say so"
	$(PY) bench/run.py $(BENCH_ARGS)

# The documentation site with the API reference from the docstrings (mkdocs + mkdocstrings);
# --strict: a warning (a broken link, a docstring that does not match its signature) fails.
docs: install $(VENV)/.docs-installed
	$(VENV)/bin/mkdocs build --strict --quiet

$(VENV)/.docs-installed: pyproject.toml
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

lint: install
	$(VENV)/bin/ruff check streamfeat tests bench replay
	$(VENV)/bin/ruff format --check streamfeat tests bench replay
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
