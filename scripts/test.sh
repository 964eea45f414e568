#!/usr/bin/env bash
# The project's test command (README): formatting, lints, docs, then every test.
#   EMOTRACK_SLOW_TESTS=1   also run the slow tests marked #[ignore] (CI does)
#   EMOTRACK_REQUIRE_DATA=1 fail, instead of skip, when ../shared data is absent (CI does)
#   EMOTRACK_MEDIA / EMOTRACK_FER2013  where the shared media and FER-2013 folders live
#                           (defaults: ../shared/media and ../shared/datasets/fer2013 beside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
if [ "${EMOTRACK_SLOW_TESTS:-0}" = 1 ]; then
  cargo test --workspace --locked -- --ignored
fi
echo "all checks passed"
