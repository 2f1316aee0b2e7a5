#!/usr/bin/env bash
# Builds the Python wheel (maturin, dev profile, the workspace's target dir so that the
# artifacts of `cargo test` are reused), installs it into a fresh venv with the pinned test
# tools, and runs the pytest suite. Called by .ci/run after `cargo test`.
#   RUN_SLOW_TESTS=1: also the comparisons with faster-whisper (its reference venv must exist:
#   ~/.cache/amanuensis-peer/venv, or $AMANUENSIS_PEER_PYTHON).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
t0=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

TOOLS="${AMANUENSIS_PY_TOOLS:-$HOME/.cache/amanuensis-py-tools}"   # maturin, kept between runs
VENV="${AMANUENSIS_PY_VENV:-$HOME/.cache/amanuensis-py-venv}"      # recreated every run
if ! "$TOOLS/bin/python" -c "import sys; sys.exit(0)" 2>/dev/null \
   || ! cmp -s "$here/requirements-ci.txt" "$TOOLS/requirements-ci.txt"; then
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "$(grep -E '^maturin==' "$here/requirements-ci.txt")"
  cp "$here/requirements-ci.txt" "$TOOLS/requirements-ci.txt"
fi

wheels="$CARGO_TARGET_DIR/wheels-py"
rm -rf "$wheels"
echo "== maturin build (dev profile) into $wheels" >&2
# --compatibility linux: the wheel is for this machine (CI and local use), not for PyPI.
(cd "$here" && "$TOOLS/bin/maturin" build --profile dev --compatibility linux --out "$wheels" --quiet)
wheel="$(ls "$wheels"/amanuensis-*.whl)"

echo "== fresh venv $VENV" >&2
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r <(grep -vE '^maturin==' "$here/requirements-ci.txt") "$wheel"
if [[ -n "${RUN_SLOW_TESTS:-}" ]]; then
  # The comparisons with faster-whisper itself (tests/test_peer.py), in the same venv.
  "$VENV/bin/pip" install -q --disable-pip-version-check faster-whisper==1.2.1
fi

echo "== pytest" >&2
export AMANUENSIS_TESTDATA="$root/testdata"
# The CLI the tests compare with: the binary `cargo test` built (built here only if missing).
export AMANUENSIS_BIN="${AMANUENSIS_BIN:-$CARGO_TARGET_DIR/debug/amanuensis}"
[[ -x "$AMANUENSIS_BIN" ]] || (cd "$root" && cargo build -q -p amanuensis)
(cd "$here/tests" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=5 .)
echo "== python package: wheel built and tests passed in $((SECONDS - t0)) s" >&2
