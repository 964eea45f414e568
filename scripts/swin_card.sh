#!/usr/bin/env bash
# The figures of the Swin model card (models/README.md, "Model card: the Swin option") for a
# finished training run, and its float16 model file as a candidate for models/swin.safetensors.
#
#   scripts/swin_card.sh RUN OUT
#
# RUN is the run folder (`emotrack train --out`); OUT a folder outside the clone for the
# candidate model and the reports. EMOTRACK_BIN is the release binary (default: build it).
# The repo's models are not touched: the candidate replaces models/swin.safetensors (and its
# .json) only when `OUT/vs-shipped.txt` shows it beats the shipped one, by hand:
#   cp OUT/swin.safetensors OUT/swin.json models/ && cp OUT/swin-confusion.png models/
set -euo pipefail
run=$(realpath "${1:?usage: scripts/swin_card.sh RUN OUT}")
out=$(realpath -m "${2:?usage: scripts/swin_card.sh RUN OUT}")
bin=${EMOTRACK_BIN:+$(realpath "$EMOTRACK_BIN")}
cd "$(dirname "$0")/.."
repo=$(pwd -P)
if [[ "$out/" == "$repo/"* ]]; then
  echo "OUT must be outside the clone ($repo): the candidate must not overwrite models/" >&2
  exit 1
fi
mkdir -p "$out"
if [[ -z "$bin" ]]; then
  cargo build --release --locked -p emotrack-cli
  bin=target/release/emotrack
fi
val=../shared/datasets/fer2013/val
step() { echo "== $*" >&2; }

step "candidate: float16 export, temperature fitted on val"
"$bin" export --model "$run" --safetensors "$out/swin.safetensors"
"$bin" calibrate --model "$out/swin.safetensors" --data "$val" --write > "$out/calibrate.txt"
step "candidate against the shipped Swin, image by image (McNemar)"
"$bin" eval --model "$out/swin.safetensors" --data "$val" --baseline models/swin.safetensors \
  --png "$out/swin-confusion.png" > "$out/vs-shipped.txt"
step "the card's accuracy columns: candidate and built-in ResNet"
"$bin" eval --model "$out/swin.safetensors" --data "$val" --format json --no-png > "$out/eval-swin.json"
"$bin" eval --model models/emotion.safetensors --data "$val" --format json --no-png > "$out/eval-resnet.json"
step "ResNet + Swin ensemble, against the ResNet alone"
"$bin" ensemble models/emotion.safetensors "$out/swin.safetensors" --out "$out/duo.safetensors" \
  --data "$val" > "$out/ensemble.txt"
"$bin" calibrate --model "$out/duo.safetensors" --data "$val" --write > "$out/duo-calibrate.txt"
"$bin" eval --model "$out/duo.safetensors" --data "$val" --no-png --baseline > "$out/duo-vs-resnet.txt"
ls -l models/emotion.safetensors "$out/swin.safetensors" "$out/duo.safetensors" > "$out/sizes.txt"
step "latency: the Swin against the ResNet in one run, three times"
for r in 1 2 3; do
  "$bin" bench classify --model "$out/swin.safetensors" --baseline --batch 1,8 --seconds 3 \
    > "$out/bench-$r.txt"
done
step "done: $out"
grep -i -E "accuracy|mcnemar|p =" "$out/vs-shipped.txt" >&2 || true
