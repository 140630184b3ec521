# streamfeat: two commands, `make demo` and `make test`. Everything else hangs off `install`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install browser demo test test-slow bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,report,parquet]'
	touch $(STAMP)

demo: install
	$(PY) -m streamfeat demo

# headless chromium for the browser tests (installed once; they skip without it)
browser:
	bash tests/install_chromium.sh

test: install browser
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	bash bench/setup_mqtt.sh || echo "mosquitto could not be installed: the MQTT rows will say so"
	$(PY) bench/run.py $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check streamfeat tests bench replay
	$(VENV)/bin/ruff format --check streamfeat tests bench replay
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
