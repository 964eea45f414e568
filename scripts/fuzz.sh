#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, on the nightly toolchain), each for a
# time or a number of executions, whichever comes first, and prints one line per target:
# executions, coverage (libFuzzer's cov/ft), corpus size and crashes.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--jobs N] [TARGET ...]
#       --seconds N   per target (default 1800)
#       --runs N      executions per target (default 1000000)
#       --jobs N      targets run at once (default 1)
#   EMOTRACK_FUZZ_DIR  corpora, crashes and logs (default /var/tmp/emotrack-fuzz), outside the
#                      clone: a corpus grows to thousands of files. Each corpus starts from the
#                      seeds (crates/emotrack-fuzz/src/seeds.rs) and is kept between runs.
#
# A crash is saved as $EMOTRACK_FUZZ_DIR/artifacts/TARGET/crash-*; fix the bug, then commit
# the input as fuzz/regressions/TARGET/NAME, which `cargo test` replays (crates/emotrack-fuzz).
# Exits 1 when a target crashed, 2 when cargo-fuzz or nightly is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=1800 runs=1000000 jobs=1 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! rustup toolchain list | grep -q '^nightly' || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh needs the nightly toolchain and cargo-fuzz: rustup toolchain install nightly && cargo +nightly install cargo-fuzz --locked" >&2
  exit 2
fi
# Every target fuzz/Cargo.toml declares, unless some are named.
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)

dir="${EMOTRACK_FUZZ_DIR:-/var/tmp/emotrack-fuzz}"
mkdir -p "$dir/corpus" "$dir/logs"
# The fuzz build has its own cache (nightly, instrumented), beside the workspace's.
export CARGO_TARGET_DIR="${EMOTRACK_FUZZ_TARGET:-/var/tmp/emotrack-fuzz-target}"
# Seeds, written by the stable toolchain into the corpora (existing corpus files are kept).
CARGO_TARGET_DIR="${EMOTRACK_SEEDS_TARGET:-$CARGO_TARGET_DIR/seeds}" \
  cargo run --quiet --locked -p emotrack-fuzz --example write_seeds -- "$dir/corpus" >/dev/null
# No sanitizer: the code under test forbids `unsafe`, so AddressSanitizer would find nothing a
# panic does not report, at a third of the speed. Release with debug assertions (overflow checks).
(cd fuzz && cargo +nightly fuzz build --sanitizer none --release)

# Largest input per target: whole photos for the image and server targets, small for the rest.
max_len() {
  case "$1" in
    image|http_analyze|multipart|websocket) echo 262144 ;;
    model|onnx) echo 131072 ;;
    *) echo 16384 ;;
  esac
}

run_one() {
  local t="$1" log="$dir/logs/$1.log"
  mkdir -p "$dir/artifacts/$t"
  set +e
  (cd fuzz && cargo +nightly fuzz run --sanitizer none --release "$t" "$dir/corpus/$t" -- \
      -max_total_time="$seconds" -runs="$runs" -max_len="$(max_len "$t")" \
      -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$t/") >"$log" 2>&1
  local rc=$?
  set -e
  local execs cov ft time crashes files
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  time=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  crashes=$(find "$dir/artifacts/$t" -type f | wc -l)
  files=$(find "$dir/corpus/$t" -type f | wc -l)
  printf '%-13s execs %9s  time %5ss  cov %6s  ft %6s  corpus %5s  crashes %s  rc %s\n' \
    "$t" "$execs" "$time" "$cov" "$ft" "$files" "$crashes" "$rc"
  [ "$rc" = 0 ]
}

failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
