#!/usr/bin/env bash
# The Python package's tests (crates/emotrack-py): builds the wheel with maturin, installs it into
# a venv outside the clone and runs pytest on crates/emotrack-py/tests. Arguments go to pytest.
#   EMOTRACK_PY_VENV     the venv (default /var/tmp/emotrack-py-venv), made anew whenever
#                        crates/emotrack-py/requirements-test.txt (the pins) changes
#   EMOTRACK_PY_PROFILE  `test` (default): the workspace crates at `cargo test`'s opt-level 1,
#                        sharing its build cache; `release`: the wheel a user gets (thin LTO,
#                        minutes longer)
#   EMOTRACK_BIN         the CLI binary, to check that faces' dicts equal `emotrack analyze`'s JSON
#   EMOTRACK_MEDIA, EMOTRACK_REQUIRE_DATA   as for scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${EMOTRACK_PY_VENV:-/var/tmp/emotrack-py-venv}"
pins=crates/emotrack-py/requirements-test.txt
if ! cmp -s "$pins" "$venv/.pins" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
  cp "$pins" "$venv/.pins"
fi

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
start=$(date +%s)
case "${EMOTRACK_PY_PROFILE:-test}" in
  release)
    (cd crates/emotrack-py && "$venv/bin/maturin" build --release --locked --out "$wheels") ;;
  test)
    # Cargo's `test` profile itself would build a test harness, not a module: the dev profile
    # with the test profile's one difference (opt-level 1) gives the same settings, so every
    # crate `cargo test --workspace` compiled is reused and only the bindings are built.
    (cd crates/emotrack-py &&
      CARGO_PROFILE_DEV_OPT_LEVEL=1 "$venv/bin/maturin" build --profile dev --locked --out "$wheels") ;;
  *)
    echo "EMOTRACK_PY_PROFILE must be test or release" >&2
    exit 1 ;;
esac
wheel=$(ls "$wheels"/emotrack-*.whl)
echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) in $(($(date +%s) - start)) s" >&2

"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
cd crates/emotrack-py
"$venv/bin/python" -m pytest tests -q -rs "$@"
