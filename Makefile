# Two commands do all set-up on a fresh machine:
#   make app    set up, serve the app at http://127.0.0.1:8501 (the demo's models are pulled in the background)
#   make test   set up, pull the test models, install chromium if missing, run the tests
# Everything is idempotent; nothing asks questions.

VENV   ?= .venv
PY     := $(VENV)/bin/python
FRUGAL := $(VENV)/bin/frugal
STAMP  := $(VENV)/.frugal-installed
DEMO_MODELS := minilm-l6 smollm2-135m
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup llama-native models test-models chromium demo docs-assets app test test-all test-random mutation bench bench-all lint lock clean

setup: $(STAMP)

# torch is pinned to the CPU build that lies on disk (a plain `torch` would pull a multi-GB CUDA build).
# requirements.lock pins every other package to the versions tested (constraints; `make lock` refreshes it).
# The runtimes extra builds llama-cpp-python from source (no wheel on the index): a portable AVX2 build
# (AVX-512/AMX off, so it runs on every x86-64 machine with AVX2), without tests, examples, server or tools:
# about 8 min on 2 cores the first time; pip caches the built wheel, so later set-ups take seconds.
# A native build for this CPU (AVX-512, AMX): `make llama-native`.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -c requirements.lock \
	  -e '.[dev,codecarbon,browser-tests,runtimes,ray]'
	touch $(STAMP)

# Rebuild llama-cpp-python for this machine's own instruction sets (AVX-512, AMX where present); bypasses the
# wheel cache, which does not know build flags. Check `frugal list variants` / the run's llama_cpp_system_info.
llama-native: $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	  -DLLAMA_BUILD_TOOLS=OFF" $(PY) -m pip install -q --no-cache-dir --force-reinstall --no-deps \
	  -c requirements.lock llama-cpp-python

lock: $(STAMP)
	$(PY) tools/lock.py

models: $(STAMP)
	$(FRUGAL) models pull

test-models: $(STAMP)
	$(FRUGAL) models pull minilm-l6 smollm2-135m

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	       || echo "chromium missing and no root: browser tests will skip"; fi; }

# pulls only the demo's models (not the qwen2.5 ones: `make models` pulls every model)
DEMO_GRID_MODELS := minilm-l6 mpnet-base smollm2-135m gemma3-270m
demo: $(STAMP)
	$(FRUGAL) models pull $(DEMO_GRID_MODELS)
	$(FRUGAL) run --config demo.yaml --out out/demo

# docs/img/frontier.png (real browser) and docs/sample-report.html from the demo run above
docs-assets: $(STAMP) chromium
	$(PY) tools/docs_assets.py --results out/demo/results.json

# Serves as soon as the environment is installed: the quick demo's two models are pulled in the background
# (progress on the Run page), the other models on demand (Pull buttons on the Run page, or `make models`).
app: $(STAMP)
	$(PY) -m evaluator.background_pull --detach $(DEMO_MODELS)
	$(VENV)/bin/streamlit run app.py

test: test-models chromium
	$(PY) -m pytest

test-all: models chromium
	$(PY) -m pytest -m ''

# the default suite in a shuffled order (pytest-randomly); SEED=N replays one order (docs/testing.md)
SEED ?= $(shell date +%s)
test-random: test-models chromium
	$(PY) -m pytest -p randomly --randomly-seed=$(SEED)

# mutation score of the pure core, written to docs/testing.md (bench/mutation.py; a few minutes, no model)
mutation: $(STAMP)
	$(PY) bench/mutation.py

bench: models
	$(PY) bench/grid.py

bench-all: models
	bash bench/run_all.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check evaluator tests bench tools app.py app_pages

clean:
	rm -rf out test-output
