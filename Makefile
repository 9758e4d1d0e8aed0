# Landscape-synthesis pipeline: preprocess -> train -> generate -> evaluate -> package.
# Targets are the stages' manifest.json files, so only stale stages run again.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LS := $(VENV)/bin/landscape
STAMP := $(VENV)/.installed

# Jittor's environment: no torch import from jittor, kernels cached in the project, and an empty
# nvcc_path where no GPU is visible (a stub nvcc otherwise breaks `import jittor`).
export FIX_TORCH_ERROR := 0
export JITTOR_HOME ?= $(CURDIR)/.cache
export cache_name := default
export HF_HUB_DISABLE_TELEMETRY := 1
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifneq ($(HAS_GPU),1)
export nvcc_path :=
endif

# ---- what a user sets --------------------------------------------------------------------
CONFIG ?= configs/base.toml
DATA ?= data
DATA_ID ?= full
EXP ?= ecgan
SET ?=
GEN ?=
NP ?= 1

A := artifacts
DATA_OUT := $(A)/data/$(DATA_ID)
RUN := $(A)/runs/$(EXP)
SETS := $(foreach s,$(SET),--set $(s))
TRAIN_CMD := $(if $(filter-out 1,$(NP)),mpirun -np $(NP) $(PY) -m pipeline.cli,$(LS))

# ---- demo: the same chain on the built-in sample dataset ------------------------------------
DEMO_CONFIG := configs/demo.toml
DEMO_RAW := $(A)/sample_dataset
DEMO_DATA := $(A)/data/sample
DEMO_RUN := $(A)/runs/demo
DEMO_SCORER := $(A)/scorer/sample
DEMO_GEN := $(A)/generated/demo
DEMO_EVAL := $(A)/eval/demo/val
DEMO_ZIP := $(A)/submission/demo.zip

.PHONY: help setup demo test test-all bench preprocess train generate submit score weights \
        fit-segformer regress regress-update clean clean-demo

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CONFIG=$(CONFIG) DATA=$(DATA) DATA_ID=$(DATA_ID) EXP=$(EXP) NP=$(NP) SET='k=v ...' GEN=DIR"

# ---- installation ---------------------------------------------------------------------------
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.10 is needed (set PYTHON=...)" if sys.version_info < (3, 10) else 0)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@echo "compiling Jittor's core once (minutes on a laptop CPU; cached in $(JITTOR_HOME))"
	$(PY) -c 'from pipeline.jt_env import setup_jittor; jt = setup_jittor("auto"); print("jittor", jt.__version__, "cuda" if jt.flags.use_cuda else "cpu")'
	@touch $@

setup: $(STAMP) ## create .venv and install everything (done by every other target on first use)

test: $(STAMP) ## run the fast test suite (no slow, no gpu tests)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) ## run every test, slow ones included
	$(PY) -m pytest -q

# ---- real data ------------------------------------------------------------------------------
$(DATA_OUT)/manifest.json: $(STAMP) $(CONFIG)
	$(LS) preprocess --data $(DATA) --out $(DATA_OUT) --config $(CONFIG) $(SETS)

preprocess: $(DATA_OUT)/manifest.json ## validate and preprocess DATA into artifacts/data/DATA_ID

$(RUN)/manifest.json: $(DATA_OUT)/manifest.json $(CONFIG)
	$(TRAIN_CMD) train --data $(DATA_OUT) --out $(RUN) --config $(CONFIG) --resume $(SETS)

train: $(RUN)/manifest.json ## train EXP on DATA (NP=4 trains on 4 GPUs with mpirun); resumes when interrupted

generate: $(RUN)/manifest.json ## generate the test maps' images into artifacts/generated/EXP/test
	$(LS) generate --run $(RUN) --data $(DATA_OUT) --split test --out $(A)/generated/$(EXP)/test $(SETS)

weights: $(STAMP) ## fill weights/ (FID Inception offline; SegFormer, CLIP, aesthetic head when online)
	$(LS) weights --dir weights

fit-segformer: $(DATA_OUT)/manifest.json ## fit the mask-accuracy SegFormer on DATA's training labels
	$(LS) fit-segformer --data $(DATA_OUT) --out weights/segformer --config $(CONFIG) $(SETS)

clean-demo: ## remove the demo's artifacts
	rm -rf $(DEMO_RAW) $(DEMO_DATA) $(DEMO_RUN) $(DEMO_SCORER) $(DEMO_GEN) $(A)/eval/demo $(A)/submission/demo*

clean: ## remove artifacts/ and the Jittor cache (keeps .venv and weights/)
	rm -rf $(A) .cache
