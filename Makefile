# streamfeat: two commands, `make demo` and `make test`. Everything else hangs off `install`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
COMPILE ?= 1
NATIVE  := $(VENV)/.compiled
NATIVE_SOURCES := $(shell $(PYTHON) scripts/build_compiled.py --list)

.PHONY: install setup compiled browser postgres demo loop test test-compiled test-slow bench lint docs clean

install: $(STAMP) $(NATIVE)

# the package and its dependencies alone, without the compiled core (pure Python runs)
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,train,postgres,cluster,report,parquet]'
	touch $(STAMP)

# The optional compiled core (mypyc, from the lint extra): built in place when a C compiler is
# present, else one line says so and the pure-Python code runs (it always can: STREAMFEAT_PURE=1).
# `make install COMPILE=0` skips it; the stamp is redone when a compiled module's source changes.

$(NATIVE): $(STAMP) scripts/build_compiled.py streamfeat/_compiled.py $(NATIVE_SOURCES)
ifeq ($(COMPILE),1)
	$(PY) scripts/build_compiled.py
else
	$(PY) scripts/build_compiled.py --clean
endif
	touch $(NATIVE)

compiled: $(NATIVE)

demo: install
	$(PY) -m streamfeat demo

# The loop (docs/loop.md): collect what a fleet uploads under the server's order, train a
# model on it, compare server, heuristic and the trained model on fresh seeds (the server's
# column: the same users without a device, which is exactly what a server run gives).
LOOP_DIR             ?= loop-run
LOOP_COLLECT_DEVICES ?= 300
LOOP_COLLECT_MINUTES ?= 20
LOOP_DEVICES         ?= 500
LOOP_MINUTES         ?= 10
LOOP_EPOCHS          ?= 3
LOOP_LR              ?= 0.001
LOOP_BATCH           ?= 32
LOOP_SAMPLES         ?= 4000
loop: install
	rm -rf $(LOOP_DIR) && mkdir -p $(LOOP_DIR)
	$(PY) -m streamfeat simulate --ranking server --devices $(LOOP_COLLECT_DEVICES) \
		--minutes $(LOOP_COLLECT_MINUTES) --speed 0 --seed 1 --workdir $(LOOP_DIR)/collect
	$(PY) -m streamfeat train --db $(LOOP_DIR)/collect/endpoint.sqlite \
		--tasks $(LOOP_DIR)/collect/tasks.toml --epochs $(LOOP_EPOCHS) --batch $(LOOP_BATCH) --lr $(LOOP_LR) \
		--max-samples $(LOOP_SAMPLES) --out $(LOOP_DIR)/model.onnx --control $(LOOP_DIR)/control.onnx
	$(PY) -m streamfeat simulate --compare heuristic,model:$(LOOP_DIR)/model.onnx,model:$(LOOP_DIR)/control.onnx,oracle \
		--devices $(LOOP_DEVICES) --minutes $(LOOP_MINUTES) --speed 0 --seed 2

# headless chromium for the browser tests (installed once; they skip without it)
browser:
	bash tests/install_chromium.sh

# PostgreSQL server binaries for the endpoint-on-PostgreSQL tests (they skip, saying so, without)
postgres:
	bash .ci/setup_postgres.sh || echo "PostgreSQL could not be installed: its tests will skip and say so"

# TEST_NEEDS=setup runs the (pure-Python) suite without building the compiled core first:
# .ci/run builds it beside the suite, on the other core, for `make test-compiled`
TEST_NEEDS ?= install
test: $(TEST_NEEDS) postgres browser
	$(PY) -m pytest -q -p no:cacheprovider

# the golden cases, the differential tests (compiled against pure) and the property and unit
# tests of the compiled modules, run on the compiled core; fails when it could not be built
test-compiled: install
	STREAMFEAT_TEST_COMPILED=1 STREAMFEAT_REQUIRE_COMPILED=1 $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) \
	  tests/golden tests/property/test_compiled_differential.py \
	  tests/property/test_triggers_differential.py tests/property/test_encoders_roundtrip.py \
	  tests/property/test_encoders_robustness.py tests/property/test_encoders_writers.py \
	  tests/property/test_tunnel_frames.py \
	  tests/unit/triggers tests/unit/encoders tests/unit/windows tests/unit/features tests/unit/tunnel \
	  tests/property/test_windows_aggregates.py tests/property/test_windows_reference.py \
	  tests/property/test_features_reference.py tests/property/test_tunnel_states.py \
	  tests/unit/foundation/test_engine_step.py tests/unit/foundation/test_engine.py \
	  tests/unit/replay/test_replay_drive.py tests/unit/replay/test_replay_gc.py \
	  tests/unit/replay/test_replay_idle.py

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
	python3 scripts/build_compiled.py --clean
