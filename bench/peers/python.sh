#!/usr/bin/env bash
# emotrack's Python package against fer, in Python (issue 37; figures in bench/RESULTS.md,
# Python): every tool in one process (bench/python/fer_api.py compare: accuracy on FER-2013
# val, photos and video frames per second as ratios to fer's, installed sizes), then each tool
# alone in a fresh process (fer_api.py memory: start-up, peak memory). About 15 minutes on 2 cores.
#   bench/peers/python.sh [OUT]      JSON files into OUT (default /var/tmp/emotrack-py-bench)
# Environment: EMOTRACK_WHEEL (a built wheel; default: build one with maturin --release),
#   EMOTRACK_MEDIA (default ../shared/media), FER2013_VAL (default ../shared/datasets/fer2013/val),
#   ROUNDS (default 3). Uses the peers' venv (bench/peers/venv.sh); the wheel goes into
#   OUT/site with `pip install --target`, on PYTHONPATH, so the shared venv is left as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-/var/tmp/emotrack-py-bench}"
media="${EMOTRACK_MEDIA:-../shared/media}"
val="${FER2013_VAL:-../shared/datasets/fer2013/val}"
for need in "$media/photos" "$media/videos" "$val"; do
  [ -d "$need" ] || { echo "python.sh: $need not found (set EMOTRACK_MEDIA / FER2013_VAL)" >&2; exit 1; }
done
venv="$(bench/peers/venv.sh)"
mkdir -p "$out"

wheel="${EMOTRACK_WHEEL:-}"
if [ -z "$wheel" ]; then
  build="$out/build-venv"
  [ -x "$build/bin/maturin" ] || {
    python3 -m venv "$build"
    "$build/bin/pip" install --quiet --disable-pip-version-check \
      "$(grep '^maturin==' crates/emotrack-py/requirements-test.txt)"
  }
  rm -rf "$out/wheels"
  (cd crates/emotrack-py && "$build/bin/maturin" build --release --locked --out "$out/wheels")
  wheel="$(ls "$out"/wheels/emotrack-*.whl)"
fi
rm -rf "$out/site"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --target "$out/site" "$wheel"

videos=("$media"/videos/*.mp4)
run() { PYTHONPATH="$out/site" "$venv/bin/python" bench/python/fer_api.py "$@"; }
run compare --photos "$media/photos" --video "${videos[@]}" --val "$val" \
  --rounds "${ROUNDS:-3}" --out "$out/compare.json" > /dev/null
echo "python.sh: wrote $out/compare.json" >&2
for tool in emotrack emotrack-compat emotrack-compat-mtcnn fer fer-mtcnn; do
  run memory --tool "$tool" --photos "$media/photos" --video "${videos[@]}" > "$out/memory-$tool.json"
  echo "python.sh: wrote $out/memory-$tool.json" >&2
done
