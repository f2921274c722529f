# Two commands do all the set-up on a fresh clone:  `make serve`  and  `make test`.
# WEIGHTS=official (default: the real SAM2.1 + GroundingDINO weights, downloaded once)
# WEIGHTS=tiny | full  (random-weight models built from the real configs; no network)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
WEIGHTS ?= official
WEIGHTS_DIR ?= weights
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install sagemaker browser node weights test serve model-store bench bench-stages clean openapi fuzz load
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/*.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -r requirements/torch.txt -c requirements/constraints.txt
	$(PIP) install --quiet -r requirements/runtime.txt -r requirements/test.txt -c requirements/constraints.txt
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation --no-deps --require-hashes -r requirements/sam2.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with every pinned dependency (idempotent)

SDK_STAMP := $(VENV)/.installed-sagemaker

$(SDK_STAMP): $(STAMP) requirements/sagemaker.txt
	$(PIP) install --quiet -r requirements/sagemaker.txt -c requirements/constraints.txt
	touch $(SDK_STAMP)

sagemaker: $(SDK_STAMP)  ## add the optional SageMaker SDK (sagemaker-core: pip install .[sagemaker]) to .venv

weights: $(STAMP)  ## fetch or build the WEIGHTS=official|tiny|full model files into weights/
	$(VENV)/bin/segserve-weights prepare $(WEIGHTS) --dir $(WEIGHTS_DIR)

# $(call apt_install,PACKAGE): the system's package, with sudo unless root
apt_install = { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(1); }

browser:  ## Debian's Chromium for the browser tests (Playwright never downloads a browser here)
	@command -v chromium >/dev/null || $(call apt_install,chromium)

node:  ## Node.js for the web UI's unit tests (node --test tests/web), from the system's packages when missing
	@command -v node >/dev/null || $(call apt_install,nodejs)

test: $(STAMP) $(SDK_STAMP) browser node  ## run the whole test suite (random tiny weights, no network; with the SDK extra)
	node --test tests/web/*.test.mjs
	$(VENV)/bin/segserve-weights prepare tiny --dir $(WEIGHTS_DIR)
	PATH="$(abspath $(VENV))/bin:$$PATH" SEGSERVE_WEIGHTS_DIR=$(abspath $(WEIGHTS_DIR)) $(PY) -m pytest $(PYTEST_ARGS)

clean:  ## remove built archives and logs (keeps .venv and weights/)
	rm -rf model_store/*.mar model_store/*/ logs build

MODEL_STORE ?= model_store
MODEL_CONFIG ?= serving/model-config
RUN_DIR ?= build/run
# The inference port's address for `make serve`: loopback, since nothing authenticates callers here (SageMaker
# does that in front of the container, which binds 0.0.0.0). BIND=0.0.0.0 opens it to the network.
BIND ?= 127.0.0.1

model-store: $(STAMP)  ## build the three TorchServe model folders from weights/$(WEIGHTS)
	$(VENV)/bin/segserve-weights prepare $(WEIGHTS) --dir $(WEIGHTS_DIR)
	$(PY) serving/build_model_store.py --weights $(WEIGHTS_DIR)/$(WEIGHTS) --model-store $(MODEL_STORE) \
	  --model-config $(MODEL_CONFIG)
	PYTHON=$(abspath $(PY)) bash serving/plugins/build.sh

serve: model-store  ## run the endpoint and the web UI (/ui/) locally through the container's entrypoint (Ctrl-C stops it)
	PATH="$(abspath $(VENV))/bin:$$PATH" SEGSERVE_MODEL_STORE=$(MODEL_STORE) SEGSERVE_CONFIG=config.properties \
	SEGSERVE_PLUGINS=serving/plugins/build SEGSERVE_RUN_DIR=$(abspath $(RUN_DIR)) SEGSERVE_UI_DIR=$(abspath web) \
	SEGSERVE_BIND_ADDRESS=$(BIND) \
	bash serving/entrypoint.sh serve

bench: $(STAMP)  ## interactive latency (P1-P6, docs/benchmarks.md) on a live TorchServe, full-size random models (~15 min)
	$(VENV)/bin/segserve-weights prepare full --dir $(WEIGHTS_DIR)
	$(PY) benchmarks/bench_serving.py --weights $(abspath $(WEIGHTS_DIR))/full $(BENCH_ARGS)

bench-stages: $(STAMP)  ## in-process per-stage CPU timings of the pipelines on the full-size random models
	$(VENV)/bin/segserve-weights prepare full --dir $(WEIGHTS_DIR)
	$(PY) benchmarks/bench_pipelines.py --weights $(WEIGHTS_DIR)/full

openapi: $(STAMP)  ## regenerate docs/openapi.yaml from the request schema, content types and error codes
	$(PY) -m segserve.contract.openapi > docs/openapi.yaml

FUZZ_REQUESTS ?= 5000

fuzz: $(STAMP)  ## the live fuzz test alone: more requests (FUZZ_REQUESTS, default 5000), new ones each run
	$(MAKE) test SEGSERVE_FUZZ_REQUESTS=$(FUZZ_REQUESTS) SEGSERVE_FUZZ_EXPLORE=1 PYTEST_ARGS="tests/integration/test_serving_fuzz.py -s --timeout=3600 $(PYTEST_ARGS)"

LOAD_WEIGHTS ?= tiny
LOAD_ARGS ?=

load: $(STAMP)  ## bounded load test on 127.0.0.1 against its own endpoint (LOAD_WEIGHTS=tiny; LOAD_ARGS="--clients 8")
	$(MAKE) model-store WEIGHTS=$(LOAD_WEIGHTS) MODEL_STORE=build/load/model_store
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) benchmarks/load_test.py --serve build/load/model_store $(LOAD_ARGS)
