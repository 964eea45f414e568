#!/usr/bin/env bash
# Makes, or reuses, the Python environment with the benchmark peers and prints its path.
#   bench/peers/venv.sh        → /var/tmp/emotrack-peers-venv (or $EMOTRACK_PEERS_VENV)
# The environment lives outside the clone so CI and later clones reuse it. It is reused while its
# stamp (a hash of the Python version and both requirement files) matches; otherwise it is rebuilt
# (about 3 minutes and 7 GB the first time: PyPI's torch brings the CUDA runtime along).
# Progress goes to stderr; stdout is only the path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${EMOTRACK_PEERS_VENV:-/var/tmp/emotrack-peers-venv}"
python="${EMOTRACK_PEERS_PYTHON:-python3}"
stamp="$venv/emotrack-peers.stamp"

if ! command -v "$python" >/dev/null; then
  echo "venv.sh: $python not found; install Python 3.11 (or set EMOTRACK_PEERS_PYTHON)" >&2
  exit 1
fi
want="$({ "$python" --version; cat "$here/requirements.txt" "$here/requirements-nodeps.txt"; } \
  | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
  echo "venv.sh: $venv exists and is not a Python environment; remove it or set EMOTRACK_PEERS_VENV" >&2
  exit 1
fi
echo "venv.sh: building the peers' Python environment in $venv (pinned in bench/peers/requirements*.txt)" >&2
start=$SECONDS
"$python" -m venv --clear "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-nodeps.txt" >&2
echo "$want" >"$stamp"
echo "venv.sh: environment ready in $((SECONDS - start)) s" >&2
echo "$venv"
