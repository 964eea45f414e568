#!/usr/bin/env bash
# Two more clips for `emotrack bench smoothing`, beside the media videos and scripts/lag_clip.sh's
# step clip, to check that the label rule's defaults do not fit only the clips they were chosen
# on. Neither was used to choose them.
#
#   fade.mp4  Real FER-2013 val faces, scaled 4x onto a 320x320 gray frame at one place, 30 fps,
#             19 s, with fresh noise on every frame: a happy face (88% happy) cross-faded over
#             2 s into a half smile (it and a neutral face blended) held 3 s, then into the
#             neutral face (87% neutral), then a neutral-labelled face the model reads as 39%
#             happy and 19% neutral, then back to happy. On the half smile, mid-fade and on
#             the ambiguous face two emotions sit close together: where a label flickers.
#   zoom.mp4  A media photo of two people (ageitgey_kit_with_rose.jpg), letterboxed to 640x480,
#             slowly zoomed in over 10 s at 30 fps with fresh sensor-like noise on every frame:
#             the expressions never change, so every shown label change is a false one.
#
#   scripts/smoothing_clips.sh [OUT_DIR]        (default /tmp/emotrack-clips)
#   target/release/emotrack bench smoothing /tmp/emotrack-clips/{fade,zoom}.mp4
#
# Environment: EMOTRACK_FER2013 (default ../shared/datasets/fer2013), EMOTRACK_MEDIA (default
# ../shared/media). Needs ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
val="${EMOTRACK_FER2013:-../shared/datasets/fer2013}/val"
media="${EMOTRACK_MEDIA:-../shared/media}"
out="${1:-/tmp/emotrack-clips}"
mkdir -p "$out"
happy="$val/happy/PublicTest_10130075.jpg"
neutral="$val/neutral/PublicTest_10262886.jpg"
unsure="$val/neutral/PublicTest_10682784.jpg"
photo="$media/photos/ageitgey_kit_with_rose.jpg"
for f in "$happy" "$neutral" "$unsure" "$photo"; do
  [ -f "$f" ] || { echo "smoothing_clips.sh: $f is missing; set EMOTRACK_FER2013 / EMOTRACK_MEDIA" >&2; exit 1; }
done

# A half smile: the happy and the neutral face blended half and half.
half="$out/half.png"
ffmpeg -loglevel error -y -i "$happy" -i "$neutral" \
  -filter_complex "[0:v]format=gray[a];[1:v]format=gray[b];[a][b]blend=all_expr='(A+B)/2'" \
  -frames:v 1 "$half"
# Each still lasts its hold plus the fades into and out of it; xfade offsets are where each fade
# starts on the joined stream: happy 0-2, fade 2-4, half smile 4-7, fade 7-9, neutral 9-11,
# fade 11-13, unsure 13-15, fade 15-17, happy 17-19. Fresh noise on every frame, as a camera
# gives, makes two close emotions trade places.
frame="scale=192:192:flags=bicubic,pad=320:320:64:64:color=gray,setsar=1,fps=30,format=yuv420p"
ffmpeg -loglevel error -y \
  -loop 1 -t 4 -i "$happy" -loop 1 -t 7 -i "$half" -loop 1 -t 6 -i "$neutral" \
  -loop 1 -t 6 -i "$unsure" -loop 1 -t 4 -i "$happy" \
  -filter_complex "[0:v]$frame[a];[1:v]$frame[b];[2:v]$frame[c];[3:v]$frame[d];[4:v]$frame[e];\
[a][b]xfade=transition=fade:duration=2:offset=2[ab];\
[ab][c]xfade=transition=fade:duration=2:offset=7[abc];\
[abc][d]xfade=transition=fade:duration=2:offset=11[abcd];\
[abcd][e]xfade=transition=fade:duration=2:offset=15,noise=alls=12:allf=t,format=yuv420p" \
  -r 30 -c:v libx264 "$out/fade.mp4"
rm -f "$half"
echo "wrote $out/fade.mp4"

ffmpeg -loglevel error -y -loop 1 -i "$photo" \
  -vf "scale=-2:480,pad=640:480:(ow-iw)/2:0:color=black,setsar=1,\
zoompan=z='1+0.25*on/300':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=300:s=640x480:fps=30,\
noise=alls=12:allf=t,format=yuv420p" \
  -frames:v 300 -r 30 -c:v libx264 "$out/zoom.mp4"
echo "wrote $out/zoom.mp4"
