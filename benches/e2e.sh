#!/usr/bin/env bash
# End-to-end benchmark: `amanuensis transcribe` against faster-whisper (the peer) on the same
# file, model, beam and threads, alternating runs in one session. Prints realtime factors
# (model load excluded: both tools time transcription only), peak RSS (from /usr/bin/time -v,
# load included), WER of both against the reference text (our normalizer for both), and the
# speed ratio.
#
# usage: benches/e2e.sh AUDIO REFERENCE_TXT [--model base] [--compute int8] [--beam 1]
#                       [--threads 2] [--runs 2] [--batch N] [--vad]
# --batch N > 1: our batched pipeline against faster-whisper's BatchedInferencePipeline
#                (batch_size=N; both segment with the VAD, as faster-whisper always does there).
# --vad:         sequential runs with the VAD filter on both sides.
# --python:      two more rows, `py-ours` and `py-peer`: benches/py_transcribe.py run by the peer's
#                Python with our wheel (release build, unpacked onto PYTHONPATH) and with
#                faster-whisper: the same script, only the imported package differs. py-ours
#                against ours is the Python package's overhead (target <= 2 %).
# env:   PEER_ROOT  faster-whisper venv + models (default ~/.cache/amanuensis-peer, made by
#                   ../shared/peer/setup.sh); PEER_SCRIPT (default ../shared/peer/transcribe.py)
# e.g.   benches/e2e.sh ../shared/audio/long/long.wav ../shared/audio/long/long.txt --beam 5
set -euo pipefail
cd "$(dirname "$0")/.."

audio=${1:?usage: benches/e2e.sh AUDIO REFERENCE_TXT [options]}
reference=${2:?usage: benches/e2e.sh AUDIO REFERENCE_TXT [options]}
shift 2
model=base compute=int8 beam=1 threads=2 runs=2 batch=1 vad="" python=""
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --compute) compute=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --vad) vad=--vad-filter; shift ;;
    --python) python=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PEER_ROOT=${PEER_ROOT:-$HOME/.cache/amanuensis-peer}
PEER_SCRIPT=${PEER_SCRIPT:-../shared/peer/transcribe.py}
[[ -x $PEER_ROOT/venv/bin/python ]] || { echo "no peer under $PEER_ROOT: run ../shared/peer/setup.sh" >&2; exit 2; }
peer_compute=$compute; [[ $compute == f32 ]] && peer_compute=float32

cargo build -q --release -p amanuensis
bin=target/release/amanuensis
cargo run -q --release -p amanuensis -- models pull "$model" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

tools="ours peer"
if [[ -n $python ]]; then
  # Our wheel, release profile, unpacked for the peer's Python (which has numpy).
  (cd crates/amanuensis-py && "$PEER_ROOT/venv/bin/python" -m pip install -q --disable-pip-version-check maturin==1.16.0 \
    && "$PEER_ROOT/venv/bin/python" -m maturin build --release --compatibility linux --out "$out/wheel" --quiet)
  "$PEER_ROOT/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --target "$out/py" "$out"/wheel/amanuensis-*.whl
  tools="ours peer py-ours py-peer"
fi
py_args=(--compute-type "$peer_compute" --beam-size "$beam" --threads "$threads" --language en --batch-size "$batch" ${vad:+--vad-filter})

rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
rtf() { grep -o 'realtime [0-9.]*x' "$1" | tail -1 | grep -o '[0-9.]*'; }

printf '%-6s %-4s %10s %10s %8s\n' tool run realtime peak_MB WER
for ((i = 1; i <= runs; i++)); do
  /usr/bin/time -v "$bin" transcribe "$audio" --model "$model" --compute-type "$compute" \
      --beam-size "$beam" --threads "$threads" --language en --batch-size "$batch" $vad \
      >"$out/ours.txt" 2>"$out/ours.err"
  /usr/bin/time -v "$PEER_ROOT/venv/bin/python" "$PEER_SCRIPT" "$PEER_ROOT/models/$model" "$audio" \
      --compute-type "$peer_compute" --beam-size "$beam" --threads "$threads" --language en \
      --batch-size "$batch" $vad >"$out/peer.txt" 2>"$out/peer.err"
  if [[ -n $python ]]; then
    PYTHONPATH="$out/py" /usr/bin/time -v "$PEER_ROOT/venv/bin/python" benches/py_transcribe.py amanuensis "$model" "$audio" \
        "${py_args[@]}" >"$out/py-ours.txt" 2>"$out/py-ours.err"
    /usr/bin/time -v "$PEER_ROOT/venv/bin/python" benches/py_transcribe.py faster_whisper "$PEER_ROOT/models/$model" "$audio" \
        "${py_args[@]}" >"$out/py-peer.txt" 2>"$out/py-peer.err"
  fi
  for tool in $tools; do
    wer=$("$bin" wer "$reference" "$out/$tool.txt")
    printf '%-6s %-4s %9sx %10s %8s\n' "$tool" "$i" "$(rtf "$out/$tool.err")" "$(rss_mb "$out/$tool.err")" "$wer"
    echo "$(rtf "$out/$tool.err")" >>"$out/$tool.rtfs"
  done
done
median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
o=$(median "$out/ours.rtfs") p=$(median "$out/peer.rtfs")
echo "model $model, compute $compute, beam $beam, threads $threads, batch $batch ${vad:+(vad)}: median realtime ours ${o}x, faster-whisper ${p}x, ratio $(awk -v a="$o" -v b="$p" 'BEGIN{printf "%.2f", a/b}')x"
if [[ -n $python ]]; then
  po=$(median "$out/py-ours.rtfs") pp=$(median "$out/py-peer.rtfs")
  echo "from Python (benches/py_transcribe.py): amanuensis ${po}x, faster-whisper ${pp}x, ratio $(awk -v a="$po" -v b="$pp" 'BEGIN{printf "%.2f", a/b}')x; Python overhead against the CLI $(awk -v a="$o" -v b="$po" 'BEGIN{printf "%.1f", (a/b-1)*100}') %"
fi
