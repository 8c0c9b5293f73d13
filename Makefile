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

.PHONY: setup models test-models chromium demo docs-assets app test test-all bench bench-all lint lock clean

setup: $(STAMP)

# torch is pinned to the CPU build that lies on disk (a plain `torch` would pull a multi-GB CUDA build).
# requirements.lock pins every other package to the versions tested (constraints; `make lock` refreshes it).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,codecarbon,browser-tests]'
	touch $(STAMP)

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

demo: models
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

bench: models
	$(PY) bench/grid.py

bench-all: models
	bash bench/run_all.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check evaluator tests bench tools app.py app_pages

clean:
	rm -rf out test-output
