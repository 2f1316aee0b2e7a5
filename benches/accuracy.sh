#!/usr/bin/env bash
# Accuracy by compute type: word error rate of `amanuensis transcribe` on the shared sets, for
# each compute type, with the same decoding settings. This is the measurement behind the
# default `--compute-type` (the fastest type within 0.5 WER points of f32).
#
# Sets: the 8 human and 12 espeak-ng clips of testdata/audio (clips.tsv), pooled per set (one
# line per clip in both files, scored by `amanuensis wer`), and optionally a long recording
# with its reference text.
#
# usage: benches/accuracy.sh [--model base] [--beam 5] [--types "f32 int8 bf16"]
#                            [--long AUDIO REFERENCE_TXT]
# e.g.   benches/accuracy.sh --model base --long ../shared/audio/long/long.wav ../shared/audio/long/long.txt
set -euo pipefail
cd "$(dirname "$0")/.."

model=base beam=5 types="f32 int8 bf16" long_audio="" long_ref=""
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --long) long_audio=$2; long_ref=$3; shift 3 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

cargo build -q --release -p amanuensis
bin=target/release/amanuensis
"$bin" models pull "$model" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Reference texts per set, in clips.tsv order.
awk -F'\t' 'NR > 1 && $2 ~ /^human\// {print $6}' testdata/audio/clips.tsv >"$out/human.ref"
awk -F'\t' 'NR > 1 && $2 ~ /^tts\// {print $6}' testdata/audio/clips.tsv >"$out/tts.ref"

printf '%-8s %-8s %-5s %12s %12s %12s\n' model compute beam human_WER espeak_WER long_WER
for ct in $types; do
  for set in human tts; do
    : >"$out/$set.$ct"
    while IFS=$'\t' read -r _ file _; do
      "$bin" transcribe "testdata/audio/$file" --model "$model" --compute-type "$ct" --beam-size "$beam" \
        --language en 2>/dev/null | tr '\n' ' ' >>"$out/$set.$ct"
      echo >>"$out/$set.$ct"
    done < <(awk -F'\t' -v s="$set" 'NR > 1 && $2 ~ "^" s "/"' testdata/audio/clips.tsv)
  done
  long="-"
  if [[ -n $long_audio ]]; then
    "$bin" transcribe "$long_audio" --model "$model" --compute-type "$ct" --beam-size "$beam" --language en \
      2>/dev/null >"$out/long.$ct"
    long=$("$bin" wer "$long_ref" "$out/long.$ct")
  fi
  printf '%-8s %-8s %-5s %12s %12s %12s\n' "$model" "$ct" "$beam" \
    "$("$bin" wer "$out/human.ref" "$out/human.$ct")" "$("$bin" wer "$out/tts.ref" "$out/tts.$ct")" "$long"
done
