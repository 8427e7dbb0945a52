#!/usr/bin/env bash
# vigil beside PyTorch on the same cores, in one run (issue 15): vigil's models and listeners
# benches, then the same LeNet5 inference, training epoch and backfill limit (the forward pass
# at batch 256) in PyTorch, printed side by side as Markdown for BENCHMARKS.md. Not a test
# and not in CI: it installs PyTorch (large) in a virtualenv of its own,
# ~/.cache/vigil-torch-venv (override with VIGIL_TORCH_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"
venv="${VIGIL_TORCH_VENV:-$HOME/.cache/vigil-torch-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check torch numpy
out="$(mktemp)"
listeners="$(mktemp)"
trap 'rm -f "$out" "$listeners"' EXIT
cargo bench -p vigil --bench models 2>/dev/null | tee "$out"
cargo bench -p vigil --bench listeners 2>/dev/null | tee "$listeners"
echo
"$venv/bin/python" bench/pytorch_peer.py --vigil "$out" --listeners "$listeners"
