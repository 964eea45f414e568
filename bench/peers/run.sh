#!/usr/bin/env bash
# emotrack side by side with the Python tools people use today (fer, OpenCV, facenet-pytorch), in
# one run on the same data: classifier accuracy on FER-2013 val, faces and time per image on the
# photos, end-to-end video frames per second, and peak memory.
#
#   bench/peers/run.sh           the full run (about 10 min on 2 cores; every video setting three
#                                times, alternating between the tools): prints the table and
#                                replaces the peers section of bench/RESULTS.md
#   bench/peers/run.sh --quick   smoke test (CI): one photo and one no-face image per tool, 21 crops,
#                                8 video frames, all peers in one process; prints the table, writes
#                                nothing, exits non-zero if any tool fails
#
# Makes (or reuses) the peers' Python environment with bench/peers/venv.sh, builds emotrack
# (release), then bench/peers/compare.py runs every tool one process at a time.
# Environment: EMOTRACK_MEDIA (default ../shared/media: photos/, no_faces/, videos/),
#   EMOTRACK_FER2013 (default ../shared/datasets/fer2013: val/<emotion>/*.jpg),
#   EMOTRACK_PEERS_VENV (default /var/tmp/emotrack-peers-venv), BENCH_SECONDS (default 2: minimum
#   timing per photo setting), BENCH_VIDEO_SECONDS (default 60: longer videos are cut to it),
#   CARGO_TARGET_DIR, EMOTRACK_BIN (an emotrack binary to use instead of building the release one;
#   CI's smoke test uses the one its tests built).
# Needs python3 (3.11), cargo, ffmpeg and ffprobe, and GNU time at /usr/bin/time (Debian: `time`).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=()
case "${1:-}" in
  "") ;;
  --quick) mode=(--quick) ;;
  *) echo "usage: bench/peers/run.sh [--quick]" >&2; exit 2 ;;
esac

media="${EMOTRACK_MEDIA:-../shared/media}"
val="${EMOTRACK_FER2013:-../shared/datasets/fer2013}/val"
missing=()
for dir in "$media/photos" "$media/no_faces" "$media/videos" \
           "$val"/{angry,disgust,fear,happy,neutral,sad,surprise}; do
  [ -d "$dir" ] || missing+=("$dir")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing folders: ${missing[*]}" >&2
  echo "run.sh: set EMOTRACK_MEDIA and EMOTRACK_FER2013 to where the shared media and FER-2013 live" >&2
  exit 1
fi
for tool in ffmpeg ffprobe /usr/bin/time; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool not found; Debian/Ubuntu: apt-get install ffmpeg time" >&2
    exit 1
  fi
done

venv="$(bench/peers/venv.sh)"
emotrack="${EMOTRACK_BIN:-${CARGO_TARGET_DIR:-target}/release/emotrack}"
if [ -z "${EMOTRACK_BIN:-}" ]; then
  echo "run.sh: building emotrack (release)" >&2
  cargo build --release --quiet -p emotrack-cli
elif [ ! -x "$emotrack" ]; then
  echo "run.sh: EMOTRACK_BIN=$emotrack is not an executable" >&2
  exit 1
fi
# The command as it was given, with the settings above that were changed, for the results.
command="bench/peers/run.sh${1:+ $1}"
for var in BENCH_SECONDS BENCH_VIDEO_SECONDS EMOTRACK_BIN EMOTRACK_FER2013 EMOTRACK_MEDIA; do
  if [ -n "${!var:-}" ]; then command="$var=${!var} $command"; fi
done
exec "$venv/bin/python" bench/peers/compare.py "${mode[@]}" \
  --emotrack "$emotrack" \
  --model models/emotion.safetensors \
  --val "$val" --media "$media" \
  --seconds "${BENCH_SECONDS:-2}" --video-seconds "${BENCH_VIDEO_SECONDS:-60}" \
  --results bench/RESULTS.md --command "$command"
