#!/usr/bin/env bash
# Bring your own Swin (issue 36): a Swin Transformer built with timm (random weights, nothing
# downloaded) runs in emotrack exported to ONNX (`--model swin.onnx`, on tract) and as weights in
# emotrack's own Swin layout (`--model swin.safetensors`, on emotrack's runtime); both must give
# PyTorch's probabilities within 1e-4 on real FER-2013 val crops. Runs in the peers' Python
# environment (bench/peers/venv.sh: torch, timm, onnx, onnxscript pinned there).
#   EMOTRACK_BIN   the emotrack binary (default target/debug/emotrack)
# Arguments go to scripts/byo_swin.py (--data, --per-class, --seed).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(bench/peers/venv.sh)"
"$venv/bin/python" scripts/byo_swin.py --emotrack "${EMOTRACK_BIN:-target/debug/emotrack}" "$@"
