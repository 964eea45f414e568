#!/usr/bin/env bash
# The web page in real Chromium: starts `emotrack serve` on a free port, runs the browser tests
# (crates/emotrack-server/web-tests: node's test runner + playwright-core, Debian's chromium),
# then stops the server. Screenshots land in target/browser/.
#   EMOTRACK_BIN            the emotrack binary (default: $CARGO_TARGET_DIR/debug/emotrack, built
#                           with `cargo build -p emotrack-cli` when absent)
#   EMOTRACK_REQUIRE_DATA=1 fail, instead of skip, without Chromium, Node or the shared media (CI)
#   CHROMIUM                the browser (default /usr/bin/chromium)
# Arguments go to `node --test`, e.g. --test-name-pattern=photo to run one test.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=crates/emotrack-server/web-tests

skip() {
  if [ "${EMOTRACK_REQUIRE_DATA:-0}" = 1 ]; then
    echo "browser tests: $1 (EMOTRACK_REQUIRE_DATA=1)" >&2
    exit 1
  fi
  echo "SKIPPED: browser tests: $1"
  exit 0
}
command -v node >/dev/null || skip "no node (apt-get install nodejs npm)"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || skip "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"

bin="${EMOTRACK_BIN:-${CARGO_TARGET_DIR:-target}/debug/emotrack}"
if [ ! -x "$bin" ]; then
  cargo build -p emotrack-cli --locked
fi
if [ ! -d "$tests/node_modules/playwright-core" ]; then
  (cd "$tests" && npm ci --no-audit --no-fund)
fi

log=$(mktemp)
"$bin" serve --bind 127.0.0.1:0 2>"$log" &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap stop EXIT

# The server prints "emotrack serving on http://ADDR; ..." once it listens; only the whole line
# (up to its ";") counts, never a prefix of the address caught mid-write.
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^emotrack serving on \(http:\/\/[^;( ]*\)[^;]*;.*/\1/p' "$log" | head -n 1)
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$log" >&2
    echo "emotrack serve exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; echo "emotrack serve printed no URL" >&2; exit 1; }
echo "browser tests against $url" >&2

status=0
EMOTRACK_URL="$url" EMOTRACK_BIN="$bin" node --test --test-concurrency=1 --test-reporter=spec \
  "$@" "$tests/page.test.js" || status=$?
if [ "$status" != 0 ]; then
  echo "--- emotrack serve's log (last 40 lines) ---" >&2
  tail -n 40 "$log" >&2
fi
exit "$status"
