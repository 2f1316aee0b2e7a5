#!/usr/bin/env bash
# Server benchmark of docs/BENCHMARKS.md ("## Server"): starts a release `amanuensis serve` on a
# free loopback port, runs loadtest.py at 1, 4 and 16 concurrent clients over the long
# recording's sentences, prints the table and the encoder batching counters, stops the server.
#
# usage: tools/loadtest/run_bench.sh [LONG_DIR] [MODEL] [COMPUTE_TYPE] [WORKERS]
#   LONG_DIR holds long.wav and long_segments.tsv (default: ../shared/audio/long)
set -euo pipefail
cd "$(dirname "$0")/../.."
LONG=${1:-../shared/audio/long}
MODEL=${2:-tiny.en}
COMPUTE=${3:-f32}
WORKERS=${4:-16}
BIN=${AMANUENSIS_BIN:-target/release/amanuensis}
[[ -x $BIN ]] || cargo build --release -p amanuensis
[[ -f $LONG/long.wav && -f $LONG/long_segments.tsv ]] || { echo "no long.wav / long_segments.tsv in $LONG" >&2; exit 2; }

tmp=$(mktemp -d)
"$BIN" serve --model "$MODEL" --compute-type "$COMPUTE" --workers "$WORKERS" --queue 64 --port 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$tmp/out")
for _ in $(seq 600); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done
echo "model $MODEL, compute type $COMPUTE, $WORKERS workers, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 tools/loadtest/loadtest.py --url "$url" --wav "$LONG/long.wav" --segments "$LONG/long_segments.tsv" --concurrency 1,4,16
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "$url/metrics" | grep -E '^amanuensis_((encoder_(batches|windows)|decoder_(passes|sequences|rows))_total|jobs_total\{outcome="ok"\})'
