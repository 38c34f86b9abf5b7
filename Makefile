# The front door. Each target creates or reuses .venv on its own, with the machine's Python.
# uv is used from PATH, else bootstrapped once into .tools/ (never into .venv, which
# `uv sync` prunes to the lock).

PYTHON ?= python3
TOOLS  := $(CURDIR)/.tools
UV     := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV   := $(CURDIR)/.venv
RUN    := $(VENV)/bin

# Never download a Python; compile bytecode at install (the wrapped tools import 4x faster).
export UV_PYTHON_DOWNLOADS := never
# The interpreter itself, not a pyenv shim: uv never matches a shim's path to an existing
# environment, and would rebuild .venv (300+ packages) on every target.
export UV_PYTHON := $(shell $(PYTHON) -c "import sys; print(sys.executable)")
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy

.PHONY: demo demo-rag demo-clean test test-llm test-cluster bench lint sync sync-test sync-llm sync-bench sync-terraform infra-synth clean

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/python -m pip install --quiet 'uv>=0.9'
	mkdir -p $(TOOLS)/bin && ln -sf $(TOOLS)/venv/bin/uv $(TOOLS)/bin/uv

# The demo's environment (with the web console's `ui` extra); --inexact keeps the infra group
# if `make test` installed it.
sync: $(UV)
	$(UV) sync --locked --all-packages --extra ui --inexact

# Tests also need the infrastructure program's cloud SDKs (the `infra` group, ~1 GB) and the
# packaged local models of the RAG recipe (the `llm` group, ~200 MB).
sync-test: $(UV) sync-terraform
	$(UV) sync --locked --all-packages --extra ui --group infra --group llm

# The Terraform path (infra/terraform, a CDK Terrain app) has its own environment: cdktn pins
# typeguard 2, Feast needs 4. Node runs its bindings (node 20 prints an end-of-life banner).
TF_DIR := $(CURDIR)/infra/terraform
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Not compiled to bytecode at install: the provider bindings are hundreds of MB of Python, of
# which a synthesis imports a few submodules (compiled on that first import instead).
sync-terraform: $(UV)
	UV_COMPILE_BYTECODE=0 UV_PROJECT_ENVIRONMENT=$(TF_DIR)/.venv $(UV) sync --locked --project $(TF_DIR)

# Terraform JSON for each example stack: infra/terraform/out/examples/<target>/ (aws, gcp, azure,
# onprem), never out/<target>/, where users synthesize their own spec.
infra-synth: sync-terraform
	cd $(TF_DIR) && .venv/bin/python -m mlstack_tf.app --out out/examples

# The RAG recipe's local models: SmolLM2 (GGUF, run by cyllama) and all-MiniLM-L6-v2.
sync-llm: $(UV)
	$(UV) sync --locked --all-packages --group llm --inexact

sync-bench: $(UV)
	$(UV) sync --locked --all-packages --group bench --inexact

# Ends by saying how to open the web console on what the demo recorded (not started unasked).
demo: sync
	$(RUN)/mlstack run recipes/quickstart
	@echo ""
	@echo "web console: $(RUN)/mlstack ui   then open http://127.0.0.1:8765/  (docs/console.md)"

# The LLM app on the same spine: prompts gated, apps canaried, online evaluation (~1 minute).
demo-rag: sync-llm
	$(RUN)/mlstack run recipes/rag-qa

# Stops the demo's endpoints first: a server whose folder is gone would hold its port.
demo-clean:
	@for folder in .mlstack/serving/*/; do \
	  [ -d "$$folder" ] && [ -x $(RUN)/mlstack ] && $(RUN)/mlstack undeploy "$$(basename "$$folder")" || true; \
	done
	@[ -x $(RUN)/mlstack ] && [ -d .mlstack/llm ] && $(RUN)/mlstack llm stop || true
	rm -rf .mlstack recipes/quickstart/data

# In parallel (pytest-xdist): most of the suite waits on the processes it starts, so 3 workers
# pay on 2 cores; each module stays on one worker, the end-to-end ones handed out first
# (tests/conftest.py). `make test TEST_WORKERS=8` on a bigger machine, `TEST_WORKERS=0` for serial.
TEST_WORKERS ?= 3

test: sync-test
	$(RUN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# A canary and a rollback on the cluster KUBECONFIG names, with the endpoint images named by
# MLSTACK_LIVE_IMAGE (docs/serving.md); skipped, saying why, without them.
test-cluster: sync-test
	$(RUN)/python -m pytest tests/live -rs

# The RAG recipe on the real packaged SmolLM2 (slow: about a minute and a half).
test-llm: sync-test
	$(RUN)/python -m pytest -m real_llm

bench: sync-bench
	$(RUN)/python bench/run_all.py

lint: sync-test
	$(RUN)/ruff check stack tests bench adapters recipes infra
	$(RUN)/ruff format --check stack tests bench adapters recipes infra
	$(RUN)/mypy

clean: demo-clean
	rm -rf $(VENV) $(TOOLS)
