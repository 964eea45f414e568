#!/usr/bin/env bash
# Face detection speed, emotrack vs the references, in one run on the same images:
#   bench/detect.sh [PHOTOS_FOLDER]     (default ../shared/media/photos)
# Builds emotrack (release), makes or reuses the Python venv of bench/peers/venv.sh (pinned versions),
# runs `emotrack bench detect --json` and bench/detect_reference.py, prints one table with
# speed ratios and writes it to the "Detection" section of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
photos="${1:-${EMOTRACK_MEDIA:-../shared/media}/photos}"
seconds="${BENCH_SECONDS:-3}"
# BENCH_VENV: use another environment with these packages (default: the peers' one, see venv.sh).
venv="${BENCH_VENV:-$(bench/peers/venv.sh)}"
cargo build --release -q -p emotrack-cli
ours=$(target/release/emotrack bench detect "$photos" --seconds "$seconds" --json)
refs=$("$venv/bin/python" bench/detect_reference.py "$photos" --seconds "$seconds")
table=$(python3 - "$ours" "$refs" <<'PY'
import json, sys
ours, refs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def find(rows, prefix, threads):
    return next(r for r in rows if r["name"].startswith(prefix) and r["threads"] == threads)
lines = ["| detector | threads | emotrack ms/image | reference ms/image | emotrack speed-up |",
         "|---|---:|---:|---:|---:|"]
for ours_name, ref_name, label in [("haar", "opencv haar", "haar vs OpenCV detectMultiScale"),
                                   ("mtcnn", "facenet-pytorch mtcnn", "mtcnn vs facenet-pytorch MTCNN")]:
    for threads in sorted({r["threads"] for r in ours}):
        o, r = find(ours, ours_name, threads), find(refs, ref_name, threads)
        lines.append(f"| {label} | {threads} | {o['ms_per_item']:.2f} | {r['ms_per_item']:.2f} | "
                     f"{r['ms_per_item'] / o['ms_per_item']:.2f}x |")
lines.append("")
lines.append("Faces found: " + "; ".join(f"{r['name']}" for r in ours + refs if r["threads"] == 1))
lines.append("Reference versions: " + "; ".join(sorted({r["version"] for r in refs})))
print("\n".join(lines))
PY
)
echo "$table"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(cat <<MD
## Detection

\`bench/detect.sh\` on $(date -u +%Y-%m-%d), $cpu, $(nproc) cores; every image of \`$photos\`
fitted into 640x480 (aspect ratio kept, black bars); mean over ≥ ${seconds} s per setting after a warm-up; same parameters on both
sides (haar: scale 1.1, 3 neighbours, min 20 px; mtcnn: min face 20, thresholds 0.6/0.7/0.7, factor 0.709).
A speed-up above 1 means emotrack is faster.

$table
MD
)
python3 - "$section" <<'PY'
import re, sys, pathlib
p = pathlib.Path("bench/RESULTS.md")
text = p.read_text() if p.exists() else "# Benchmark results\n\nEach section names the command that produced it.\n"
section = sys.argv[1].rstrip() + "\n"
pattern = re.compile(r"^## Detection\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
p.write_text(text)
PY
echo "written to bench/RESULTS.md"
