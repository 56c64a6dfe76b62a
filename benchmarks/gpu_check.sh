#!/usr/bin/env bash
# GPU check: the stack with the production model architectures (RANDOM weights, for timing only) on
# this machine's GPU (--gpu, the default when nvidia-smi works) or its CPU (--cpu); per-model latency
# and throughput against Triton, then search end to end through Envoy. See benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh [--gpu | --cpu] [--runs N] [--pairs 100] [--batch 64] [--image-batch 32]
#                           [--articles 3000] [--offset 7000] [--scratch build/gpu-check] [--keep-up]
#   benchmarks/gpu_check.sh down [--offset 7000] [--scratch build/gpu-check]   # stop a --keep-up stack
#
# The stack is stopped at the end, also on failure or interruption, unless --keep-up: by the helper
# itself (its `finally`), and by the trap below when the helper failed or was killed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"

step=run
keep_up=0
options=()
for argument in "$@"; do
    case "$argument" in
        run | build | measure | down) step="$argument" ;;
        --keep-up) keep_up=1 ;;
        *) options+=("$argument") ;;
    esac
done

status=1
make_sure_it_is_down() {
    # Only the stack of this run (same --offset and --scratch): `atelier down`, then any process still
    # running from its state folder.
    if [[ "$step" == run && "$keep_up" == 0 && "$status" != 0 ]]; then
        echo "gpu_check: making sure the stack is down" >&2
        "$PYTHON" -m benchmarks.gpu_check down ${options[@]+"${options[@]}"} || true
    fi
}
trap make_sure_it_is_down EXIT
trap 'exit 130' INT TERM

"$PYTHON" -m benchmarks.gpu_check "$@" && status=0 || status=$?
exit "$status"
