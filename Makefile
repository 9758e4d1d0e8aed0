# Landscape-synthesis pipeline: preprocess -> train -> generate -> evaluate -> package.
# Targets are the stages' manifest.json files, so only stale stages run again.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
# stage outputs made by pattern rules are results, never temporary files
.SECONDARY:
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
# Python's bytecode cache: the packages install without .pyc files (pip --no-compile) and each
# module's is written on its first import. Where the environment sets PYTHONDONTWRITEBYTECODE,
# none would ever be written and every process would compile what it imports again (PyTorch,
# transformers and torch-fidelity: ~9 CPU s per scoring process): the project's commands write
# theirs under .cache/pycache instead, which leaves the source trees as clean as that setting.
ifneq ($(PYTHONDONTWRITEBYTECODE),)
export PYTHONDONTWRITEBYTECODE :=
export PYTHONPYCACHEPREFIX ?= $(CURDIR)/.cache/pycache
endif
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

A ?= artifacts
FIDW := weights/inception-v3-compat-2015-12-05.pth
DATA_OUT := $(A)/data/$(DATA_ID)
RUN := $(A)/runs/$(EXP)
SETS := $(foreach s,$(SET),--set $(s))
# NP > 1: OpenMPI's mpirun starts NP training processes (MPI_ARGS adds, e.g. -hostfile hosts);
# -x gives remote ranks Jittor's environment; Ctrl-C leaves them 30 s (OpenMPI's default: 1 s)
# to save their checkpoint.
MPIRUN ?= mpirun
MPI_ARGS ?=
MPI_ENV := -x FIX_TORCH_ERROR -x JITTOR_HOME -x cache_name -x PATH $(if $(HAS_GPU),,-x nvcc_path)
TRAIN_CMD := $(if $(filter-out 1,$(NP)),OMPI_MCA_odls_base_sigkill_timeout=30 $(MPIRUN) -np $(NP) \
    $(if $(filter 0,$(shell id -u)),--allow-run-as-root) $(MPI_ENV) $(MPI_ARGS) $(PY) -m pipeline.cli,$(LS))
GPU_CHECK_ARGS ?=

# ---- demo: the same chain on the built-in sample dataset ------------------------------------
DEMO_CONFIG ?= configs/demo.toml
DEMO_TRAIN ?= 400  # >= 4 x data.val_count (preprocess caps val at a quarter of the pairs)
DEMO_TEST ?= 12
BASELINE := tests/baselines/validation_scores.json
REGRESS := $(A)/regress
REGRESS_ARGS := A=$(REGRESS) DEMO_CONFIG=configs/ci.toml DEMO_TRAIN=160 DEMO_TEST=4
DEMO_RAW := $(A)/sample_dataset
DEMO_DATA := $(A)/data/sample
DEMO_RUN := $(A)/runs/demo
DEMO_SCORER := $(A)/scorer/sample
DEMO_GEN := $(A)/generated/demo
DEMO_ORACLE := $(A)/generated/style-oracle/val
DEMO_CEIL := $(A)/eval/ground-truth/val
DEMO_EVAL := $(A)/eval/demo/val
DEMO_ZIP := $(A)/submission/demo.zip
DEMO_PKG := $(A)/submission/demo/manifest.json

.PHONY: gpu-check
.PHONY: help setup mpi-setup ceiling demo demo-chain test test-all bench preprocess train generate submit score weights \
        fit-segformer regress regress-update clean clean-demo

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CONFIG=$(CONFIG) DATA=$(DATA) DATA_ID=$(DATA_ID) EXP=$(EXP) NP=$(NP) SET='k=v ...' GEN=DIR"

# ---- installation ---------------------------------------------------------------------------
# In steps, so that Jittor's core compiles and training starts while PyTorch still installs:
#   $(BASE)      the venv with what preprocessing, training and generation need (tools/pins.py
#                train) and the project itself; Jittor installs first and its core compile
#                starts in the background while the rest of this step installs
#   $(PKGS)      every other dependency (PyTorch, the scorers' packages, pytest), installed at a
#                lower CPU priority than the compile and training beside it; on <= 2 cores
#                after the compile (PKGS_AFTER)
#   $(JT_READY)  Jittor's core compiled: waits for that compile (or, when it did not finish,
#                e.g. interrupted, compiles in the foreground and shows its errors)
#   $(STAMP)     all of it
# pip skips byte-compiling the packages' modules (--no-compile): Python compiles the ones a
# command imports on first use, a fraction of PyTorch's and transformers' thousands.
BASE := $(VENV)/.base
PKGS := $(VENV)/.packages
JT_READY := $(VENV)/.jittor-ready
PIP := $(PY) -m pip install --quiet --no-compile
JT_LOG := $(VENV)/jittor-compile.log
JT_PID := $(VENV)/jittor-compile.pid
JT_DONE := $(VENV)/.jittor-compiled
JT_COMPILE := $(PY) -c 'import pathlib; from pipeline.jt_env import setup_jittor; jt = setup_jittor("auto"); \
    print("jittor", jt.__version__, "cuda" if jt.flags.use_cuda else "cpu"); pathlib.Path("$(JT_DONE)").touch()'

$(BASE): pyproject.toml tools/pins.py
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.10 is needed (set PYTHON=...)" if sys.version_info < (3, 10) else 0)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) tools/pins.py jittor | tr '\n' '\0' | xargs -0 $(PIP)
	@echo "compiling Jittor's core once (minutes on a laptop CPU; cached in $(JITTOR_HOME)) while the rest installs"
	@rm -f $(JT_DONE); $(JT_COMPILE) > $(JT_LOG) 2>&1 & echo $$! > $(JT_PID)
	$(PY) tools/pins.py train | tr '\n' '\0' | xargs -0 $(PIP) || { kill $$(cat $(JT_PID)) 2>/dev/null; exit 1; }
	$(PIP) --no-deps -e . || { kill $$(cat $(JT_PID)) 2>/dev/null; exit 1; }
	@touch $@

# With 2 cores or fewer the packages install after Jittor's core compile, which uses them all:
# side by side (even at nice 10; pip writes ~5 GB) the compile took ~240 s instead of ~180 on
# this project's 2-core machine, and training waits for it (docs/benchmarks.md).
SETUP_CORES := $(shell nproc 2>/dev/null || echo 4)
PKGS_AFTER := $(if $(filter 0 1 2,$(SETUP_CORES)),$(JT_READY))

$(PKGS): $(BASE) $(PKGS_AFTER)
	nice -n 10 $(PIP) -e .
	@touch $@

$(JT_READY): $(BASE)
	@pid=$$(cat $(JT_PID) 2>/dev/null || true); \
	while [ ! -f $(JT_DONE) ] && [ -n "$$pid" ] && ps -p "$$pid" -o args= 2>/dev/null | grep -q setup_jittor; do sleep 1; done; \
	if [ ! -f $(JT_DONE) ]; then \
	    echo "compiling Jittor's core (log: $(JT_LOG))"; \
	    $(JT_COMPILE) > $(JT_LOG) 2>&1 || { cat $(JT_LOG); echo "Jittor's core did not compile (log above: $(JT_LOG))"; exit 1; }; \
	fi; tail -n 1 $(JT_LOG)
	@touch $@

$(STAMP): $(PKGS) $(JT_READY)
	@touch $@

setup: $(STAMP) ## create .venv and install everything (done by every other target on first use)

mpi-setup: ## install OpenMPI (mpirun, mpicc) for multi-process training, when missing and allowed
	@if command -v mpirun >/dev/null && command -v mpicc >/dev/null; then \
	    echo "OpenMPI present: $$(mpirun --version 2>/dev/null | head -1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev; \
	else \
	    echo "OpenMPI is missing; install it as an administrator, e.g."; \
	    echo "  sudo apt-get install openmpi-bin libopenmpi-dev     (Debian/Ubuntu)"; \
	    echo "  sudo dnf install openmpi openmpi-devel              (Fedora/RHEL)"; \
	    echo "  conda install -c conda-forge openmpi mpi4py         (no root)"; \
	    exit 1; \
	fi

test: $(STAMP) ## run the fast test suite (no slow, no gpu tests)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) ## run every test, slow ones included
	$(PY) -m pytest -q

# ---- real data ------------------------------------------------------------------------------
$(DATA_OUT)/manifest.json: $(CONFIG) | $(BASE)
	$(LS) preprocess --data $(DATA) --out $(DATA_OUT) --config $(CONFIG) $(SETS)

preprocess: $(DATA_OUT)/manifest.json ## validate and preprocess DATA into artifacts/data/DATA_ID

$(RUN)/manifest.json: $(DATA_OUT)/manifest.json $(CONFIG) | $(JT_READY)
	$(TRAIN_CMD) train --data $(DATA_OUT) --out $(RUN) --config $(CONFIG) --resume $(SETS)

train: $(RUN)/manifest.json ## train EXP on DATA (NP=4: 4 processes/GPUs with mpirun, MPI_ARGS='-hostfile hosts'); resumes when interrupted

gpu-check: $(STAMP) ## on a GPU machine (<= 8 min): gpu tests, 50 train steps at 512x384, 100 maps generated and scored; table + json (GPU_CHECK_ARGS='--device cpu --tiny' on a CPU)
	$(PY) tools/gpu_check.py --out $(A)/gpu_check.json $(GPU_CHECK_ARGS)

generate: $(RUN)/manifest.json ## generate the test maps' images into artifacts/generated/EXP/test
	$(LS) generate --run $(RUN) --data $(DATA_OUT) --split test --out $(A)/generated/$(EXP)/test $(SETS)

$(FIDW): | $(PKGS)
	$(LS) weights --dir weights --no-download

weights: $(STAMP) ## fill weights/ (FID Inception offline; SegFormer, CLIP, aesthetic head, VGG19 when online)
	$(LS) weights --dir weights

fit-segformer: $(DATA_OUT)/manifest.json | $(PKGS) ## fit the mask-accuracy SegFormer on DATA's training labels
	$(LS) fit-segformer --data $(DATA_OUT) --out weights/segformer --config $(CONFIG) $(SETS)

submit: $(RUN)/manifest.json ## generate the test maps' images and zip them into artifacts/submission/EXP.zip
	$(LS) generate --run $(RUN) --data $(DATA_OUT) --split test --out $(A)/generated/$(EXP)/test $(SETS)
	$(LS) package --generated $(A)/generated/$(EXP)/test --data $(DATA_OUT) \
	    --out $(A)/submission/$(EXP).zip --scores $(A)/eval/$(EXP)/test --scores-optional --config $(CONFIG)

score: $(STAMP) | $(FIDW) ## score EXP on the validation split (GEN=DIR [SPLIT=test] [ANY_SIZE=1]: any folder of images)
ifeq ($(GEN),)
	$(MAKE) --no-print-directory $(RUN)/manifest.json
	$(LS) generate --run $(RUN) --data $(DATA_OUT) --split val --out $(A)/generated/$(EXP)/val $(SETS)
	$(LS) evaluate --generated $(A)/generated/$(EXP)/val --data $(DATA_OUT) --split val --out $(A)/eval/$(EXP)/val --config $(CONFIG) $(SETS)
else
	$(LS) evaluate --generated $(GEN) --data $(DATA_OUT) --split $(or $(SPLIT),val) \
	    --out $(A)/eval/$(EXP)/$(notdir $(abspath $(GEN))) --config $(CONFIG) $(SETS) \
	    $(if $(ANY_SIZE),--allow-any-size)
endif

# ---- the demo chain ------------------------------------------------------------------------------
$(DEMO_RAW)/manifest.json: | $(BASE)
	$(SIDE_NICE) $(LS) sample-data --out $(DEMO_RAW) --train $(DEMO_TRAIN) --test $(DEMO_TEST) --seed 0

$(DEMO_DATA)/manifest.json: $(DEMO_RAW)/manifest.json $(DEMO_CONFIG)
	$(SIDE_NICE) $(LS) preprocess --data $(DEMO_RAW) --out $(DEMO_DATA) --config $(DEMO_CONFIG)

$(DEMO_SCORER)/manifest.json: $(DEMO_DATA)/manifest.json $(DEMO_CONFIG) | $(PKGS)
	$(LS) fit-segformer --data $(DEMO_DATA) --out $(DEMO_SCORER) --config $(DEMO_CONFIG) $(SIDE_QUIET)

# training needs no scorer (the demo config scores nothing during training), so it runs beside
# fit-segformer and the ceilings
$(DEMO_RUN)/manifest.json: $(DEMO_DATA)/manifest.json $(DEMO_CONFIG) | $(JT_READY)
	$(LS) train --data $(DEMO_DATA) --out $(DEMO_RUN) --config $(DEMO_CONFIG) --resume

# the style term's ceiling: each validation map painted in its reference's own style
$(DEMO_ORACLE)/manifest.json: $(DEMO_DATA)/manifest.json $(DEMO_CONFIG) | $(PKGS)
	$(LS) style-oracle --data $(DEMO_DATA) --split val --out $(DEMO_ORACLE) --config $(DEMO_CONFIG)

$(DEMO_GEN)/%/manifest.json: $(DEMO_RUN)/manifest.json
	$(LS) generate --run $(DEMO_RUN) --data $(DEMO_DATA) --split $* --out $(DEMO_GEN)/$*

# the ceiling: the validation photos themselves through the same scorer
$(DEMO_CEIL)/manifest.json: $(DEMO_DATA)/manifest.json $(DEMO_SCORER)/manifest.json $(DEMO_CONFIG) | $(FIDW)
	$(LS) evaluate --ground-truth --data $(DEMO_DATA) --split val --out $(DEMO_CEIL) \
	    --config $(DEMO_CONFIG) --set evaluate.segformer=$(DEMO_SCORER) $(SIDE_QUIET)

ceiling: $(DEMO_CEIL)/manifest.json $(DEMO_ORACLE)/manifest.json ## the demo's ceilings: its val photos through the same scorer, and the style oracle

# validation: every term beside its ceiling (ground truth; style oracle for the style term)
$(DEMO_EVAL)/manifest.json: $(DEMO_GEN)/val/manifest.json $(DEMO_SCORER)/manifest.json $(DEMO_CEIL)/manifest.json $(DEMO_ORACLE)/manifest.json | $(FIDW)
	$(LAST_THREADS) $(LS) evaluate --generated $(DEMO_GEN)/val --data $(DEMO_DATA) --split val --out $(DEMO_EVAL) \
	    --config $(DEMO_CONFIG) --set evaluate.segformer=$(DEMO_SCORER) \
	    --ceiling $(DEMO_CEIL) --style-ceiling $(DEMO_ORACLE)

$(A)/eval/demo/test/manifest.json: $(DEMO_GEN)/test/manifest.json $(DEMO_SCORER)/manifest.json | $(FIDW)
	$(LS) evaluate --generated $(DEMO_GEN)/test --data $(DEMO_DATA) --split test --out $(A)/eval/demo/test \
	    --config $(DEMO_CONFIG) --set evaluate.segformer=$(DEMO_SCORER)

$(DEMO_PKG): $(DEMO_GEN)/test/manifest.json $(A)/eval/demo/test/manifest.json
	$(LS) package --generated $(DEMO_GEN)/test --data $(DEMO_DATA) --out $(DEMO_ZIP) \
	    --scores $(A)/eval/demo/test --config $(DEMO_CONFIG)

# `make demo` runs the chain in a second make with DEMO_JOBS jobs: the data is made (at nice 10)
# while Jittor's core compiles and PyTorch installs (after the compile on <= 2 cores; three jobs
# there, one of which only waits for the compile), training starts once Jittor's core is
# compiled, and fit-segformer and the ceilings
# run beside it. At most two jobs do heavy work at once (the chain allows no more). Each process
# gets one thread (OMP_NUM_THREADS, unless set). Every stage command runs through the timing
# wrapper under one run id, the demo's start, so the split at the end includes set-up.
# fit-segformer and the ground truth's scoring run beside training without progress bars
# (SIDE_QUIET).
DEMO_JOBS ?= 3
demo: TIMING_RUN := $(shell date +%s.%N)
demo: ## the whole chain on the built-in sample dataset (CPU, minutes): data, scorer, train, generate, score, zip
	@$(MAKE) --no-print-directory -j$(DEMO_JOBS) TIMING_RUN=$(TIMING_RUN) demo-chain
	@$(PY) -m evaluation.summary $(DEMO_EVAL) $(DEMO_ZIP)
	@$(PY) -m pipeline.core.timing summary --file $(A)/timings.json --run-id $(TIMING_RUN) \
	    --expect "sample-data,preprocess,fit-segformer,train,style-oracle val,evaluate ground-truth,generate val,generate test,evaluate val,evaluate test,package"

demo-chain: $(DEMO_EVAL)/manifest.json $(DEMO_PKG)
ifneq ($(TIMING_RUN),)
LS = $(PY) -m pipeline.core.timing run --file $(A)/timings.json --run-id $(TIMING_RUN) -- $(VENV)/bin/landscape
ifneq ($(DEMO_JOBS),1)
export OMP_NUM_THREADS ?= 1
# the stages that run beside training keep their progress bars off its line
SIDE_QUIET := --quiet
# the sample data is made while Jittor's core compiles, which training waits for
SIDE_NICE := nice -n 10
# the demo's last stage, scoring the validation images, runs when the rest is done: all cores
# (its Inception pass 32 -> 18 s on 2 cores; FID equal to 1e-8 relative, A the same)
LAST_THREADS := OMP_NUM_THREADS=$(SETUP_CORES)
endif
endif

regress: $(STAMP) ## CI check: the chain at the CI setting (fixed seeds), validation scores vs the committed baseline
	$(MAKE) --no-print-directory $(REGRESS_ARGS) $(REGRESS)/eval/demo/val/manifest.json
	$(PY) -m evaluation.regress $(REGRESS)/eval/demo/val/scores.json $(BASELINE)

regress-update: $(STAMP) ## rewrite the regression baseline from a fresh CI-setting run (on purpose only)
	$(MAKE) --no-print-directory $(REGRESS_ARGS) $(REGRESS)/eval/demo/val/manifest.json
	$(PY) -m evaluation.regress $(REGRESS)/eval/demo/val/scores.json $(BASELINE) --update

bench: $(STAMP) | $(FIDW) ## speed goals, each a ratio against a reference timed in the same run
	$(PY) -m pipeline.data.bench
	$(PY) -m pipeline.bench
	$(PY) -m evaluation.bench --config $(DEMO_CONFIG)
	$(PY) -m evaluation.bench_fullsize
	$(PY) -m tools.step_bench --jittor-previous winograd --json $(A)/bench/step_bench.json

clean-demo: ## remove the demo's artifacts
	rm -rf $(DEMO_RAW) $(DEMO_DATA) $(DEMO_RUN) $(DEMO_SCORER) $(DEMO_GEN) $(A)/generated/style-oracle $(A)/eval/ground-truth $(A)/eval/demo $(A)/submission/demo*

clean: ## remove artifacts/ and the Jittor cache (keeps .venv and weights/)
	rm -rf $(A) .cache
