#!/usr/bin/env bash
# A clip with sustained expression changes, to time the smoothing lag on
# (`emotrack bench smoothing`): none of ../shared/media/videos holds one expression for a second
# and then another for a second, so the lag cannot be measured on them.
#
# The clip is two real FER-2013 val photos, a happy face and a surprised one (both read that way
# by the built-in model with 88% and 92%), each scaled 4x onto a 320x320 gray frame at the same
# place and held for 2 s, alternating: happy, surprise, happy, surprise at 25 fps (8 s, three
# changes). The raw label is steady between the changes, so the bench times the smoothing's
# response to a clean step.
#
#   scripts/lag_clip.sh [OUT.mp4]        (default /tmp/emotrack-lag.mp4)
#   target/release/emotrack bench smoothing /tmp/emotrack-lag.mp4
#
# Environment: EMOTRACK_FER2013 (default ../shared/datasets/fer2013). Needs ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
val="${EMOTRACK_FER2013:-../shared/datasets/fer2013}/val"
out="${1:-/tmp/emotrack-lag.mp4}"
happy="$val/happy/PublicTest_10130075.jpg"
surprise="$val/surprise/PublicTest_10709121.jpg"
for f in "$happy" "$surprise"; do
  [ -f "$f" ] || { echo "lag_clip.sh: $f is missing; set EMOTRACK_FER2013 to the FER-2013 folder" >&2; exit 1; }
done
frame="scale=192:192:flags=bicubic,pad=320:320:64:64:color=gray,setsar=1"
ffmpeg -loglevel error -y \
  -loop 1 -framerate 25 -t 2 -i "$happy" -loop 1 -framerate 25 -t 2 -i "$surprise" \
  -loop 1 -framerate 25 -t 2 -i "$happy" -loop 1 -framerate 25 -t 2 -i "$surprise" \
  -filter_complex "[0:v]$frame[a];[1:v]$frame[b];[2:v]$frame[c];[3:v]$frame[d];[a][b][c][d]concat=n=4:v=1:a=0,format=yuv420p" \
  -r 25 -c:v libx264 "$out"
echo "wrote $out"
