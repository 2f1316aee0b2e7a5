#!/usr/bin/env bash
# One broker worker's throughput (docs/SCALING.md): a private nats-server with JetStream, one
# `amanuensis serve --broker`, one `amanuensis worker --broker --jobs J`, then COPIES copies of
# AUDIO submitted at once with `amanuensis jobs submit --wait`; prints the elapsed wall time of
# the submission (upload + queue + transcription of every copy + fetching the results) and the
# audio seconds per wall second, and the worker's peak RSS. Jobs use the defaults (beam 5, as
# `worker --beam-size`; no VAD) and --language en.
#
# usage: benches/broker_throughput.sh AUDIO.wav [--copies 8] [--jobs 4] [--model base]
# needs: nats-server on PATH (Debian's `nats-server` package; .ci/run installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
audio=${1:?usage: benches/broker_throughput.sh AUDIO [--copies N] [--jobs J] [--model M]}
shift
copies=8 jobs=4 model=base
while (($#)); do
  case $1 in
    --copies) copies=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v nats-server >/dev/null || { echo "nats-server is not on PATH (apt-get install nats-server)" >&2; exit 2; }
cargo build -q --release -p amanuensis
bin=$(pwd)/target/release/amanuensis
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

nats_port=$(free_port) http_port=$(free_port)
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 & pids+=($!)
broker=nats://127.0.0.1:$nats_port
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$nats_port") 2>/dev/null && break; sleep 0.1; done
"$bin" serve --model "$model" --port "$http_port" --broker "$broker" >"$work/serve.log" 2>&1 & pids+=($!)
"$bin" worker --model "$model" --broker "$broker" --jobs "$jobs" >"$work/worker.log" 2>&1 & pids+=($!)
worker=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$http_port/health" >/dev/null && break; sleep 0.2; done
sleep 2 # the worker loads its model

seconds=$(python3 -c 'import sys,wave; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())' "$audio")
files=(); for _ in $(seq "$copies"); do files+=("$audio"); done
start=$(date +%s.%N)
"$bin" jobs --server "http://127.0.0.1:$http_port" submit "${files[@]}" --language en --wait >"$work/results.txt"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$copies" -v d="$seconds" -v j="$jobs" -v m="$model" 'BEGIN {
  t = e - s; printf "model %s, --jobs %d: %d x %.1f s of audio in %.1f s wall: %.2f audio s / s (%.0f audio h / day)\n", m, j, n, d, t, n*d/t, n*d/t*24 }'
echo "worker peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$worker/status)"
