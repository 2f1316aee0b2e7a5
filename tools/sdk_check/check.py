"""The server against the official `openai` Python SDK: every field of OpenAI's transcription
API the SDK sends, answered or refused with a 400 that names the field.

Run by crates/amanuensis/tests/openai_sdk.rs (python check.py BASE_URL TESTDATA [--vad]) against
`amanuensis serve --model tiny.en --model-alias gpt-4o-transcribe --beam-size 1`. Exits non-zero on the first
failed check, saying which.
"""

import sys
import warnings

import openai
from openai import OpenAI

BASE, TESTDATA = sys.argv[1], sys.argv[2]
VAD = "--vad" in sys.argv[3:]
client = OpenAI(base_url=f"{BASE}/v1", api_key="unused", max_retries=0, timeout=300)
CLIP = f"{TESTDATA}/audio/tts/s03.wav"  # 9.33 s, two segments
checks = 0


def audio():
    return open(CLIP, "rb")


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"sdk_check FAILED: {what}")
    checks += 1


def refused(what, words, **kw):
    """The request raises BadRequestError (400) whose message holds every one of `words`."""
    kw.setdefault("model", "whisper-1")
    try:
        client.audio.transcriptions.create(file=audio(), **kw)
    except openai.BadRequestError as e:
        msg = e.body.get("message", "") if isinstance(e.body, dict) else str(e)
        for w in words:
            check(w in msg, f"{what}: the 400 does not say `{w}`: {msg}")
        return msg
    raise SystemExit(f"sdk_check FAILED: {what}: accepted, expected a 400")


# /v1/models lists the loaded model and its aliases.
ids = [m.id for m in client.models.list()]
check(ids[:1] == ["tiny.en"] and "whisper-1" in ids and "gpt-4o-transcribe" in ids, f"models: {ids}")
check(client.models.retrieve("gpt-4o-transcribe").id == "gpt-4o-transcribe", "models.retrieve alias")

# json: text and usage; the alias works.
plain = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio())
check("strange lights" in plain.text, f"json text: {plain.text!r}")
check(plain.usage is not None and plain.usage.type == "duration" and plain.usage.seconds == 10, f"json usage: {plain.usage}")
check(plain.logprobs is None, "no logprobs unless asked")

# verbose_json with words only: words, no segments (as OpenAI does), language by name.
words_only = client.audio.transcriptions.create(
    model="whisper-1", file=audio(), response_format="verbose_json", timestamp_granularities=["word"])
check(words_only.language == "english", f"language: {words_only.language!r}")
check(abs(words_only.duration - 9.33) < 0.01, f"duration {words_only.duration}")
check(words_only.segments is None, "segments left out when only words are asked for")
check(words_only.usage is not None and words_only.usage.seconds == 10, f"verbose usage: {words_only.usage}")
words = words_only.words or []
check(len(words) >= 15, f"{len(words)} words")
check(" ".join(w.word for w in words) == words_only.text, f"words joined: {[w.word for w in words]}")
check(all(0 <= w.start <= w.end <= words_only.duration + 0.05 for w in words), "word times within the audio")
check(all(a.end <= b.start + 1e-9 for a, b in zip(words, words[1:])), "words in order, not overlapping")
check(not hasattr(words[0], "probability") or getattr(words[0], "probability", None) is None, "OpenAI's word fields only")

# Both granularities.
both = client.audio.transcriptions.create(
    model="whisper-1", file=audio(), response_format="verbose_json", timestamp_granularities=["word", "segment"])
check(both.segments is not None and len(both.segments) == 2, f"segments: {both.segments}")
check([w.model_dump() for w in both.words] == [w.model_dump() for w in words], "the same words with segments")
check("".join(s.text for s in both.segments).strip() == both.text, "segment texts make the text")
for s in both.segments:
    inside = [w for w in words if s.start - 0.01 <= w.start and w.end <= s.end + 0.01]
    check(inside, f"segment {s.id} holds words")
    check(isinstance(s.avg_logprob, float) and s.tokens and s.seek == 0, f"segment fields: {s}")
segments_only = client.audio.transcriptions.create(
    model="whisper-1", file=audio(), response_format="verbose_json", timestamp_granularities=["segment"])
check(segments_only.words is None and len(segments_only.segments) == 2, "segment granularity: no words")

# include=["logprobs"] (json): one per text token; their bytes spell the text.
lp = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio(), include=["logprobs"])
check(lp.logprobs and all(x.logprob <= 0 for x in lp.logprobs), "logprobs present and <= 0")
spelled = bytes(int(b) for x in lp.logprobs for b in x.bytes).decode()
check(spelled.strip() == lp.text, f"logprob bytes spell {spelled!r}")
check("".join(x.token for x in lp.logprobs).strip() == lp.text, "logprob tokens spell the text")

# Streaming with logprobs: deltas carry their tokens' logprobs, done carries them all.
events = list(client.audio.transcriptions.create(
    model="gpt-4o-transcribe", file=audio(), stream=True, include=["logprobs"]))
deltas = [e for e in events if e.type == "transcript.text.delta"]
done = events[-1]
check(done.type == "transcript.text.done" and done.text == plain.text, f"stream done: {done}")
check(len(deltas) == 2 and all(d.logprobs for d in deltas), "stream deltas with logprobs")
check(len(done.logprobs) == len(lp.logprobs), "stream done logprobs")

# Other fields the SDK sends: prompt, temperature, language, keywords, one language.
r = client.audio.transcriptions.create(
    model="whisper-1", file=audio(), prompt="Children, hills.", temperature=0.0, language="en",
    keywords=["strange lights"], languages=["en"])
check("lights" in r.text, f"prompt/keywords/languages: {r.text!r}")
for fmt in ["text", "srt", "vtt"]:
    out = client.audio.transcriptions.create(model="whisper-1", file=audio(), response_format=fmt)
    check(isinstance(out, str) and "strange lights" in out, f"{fmt}: {out!r}")

# chunking_strategy: "auto" and a server_vad object (sent as chunking_strategy[type], ...).
if VAD:
    for strategy in ["auto", {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}]:
        r = client.audio.transcriptions.create(model="whisper-1", file=audio(), chunking_strategy=strategy)
        check("strange lights" in r.text, f"chunking_strategy {strategy}: {r.text!r}")
    refused("a bad server_vad threshold", ["chunking_strategy"], chunking_strategy={"type": "server_vad", "threshold": 7})
else:
    print("sdk_check: chunking_strategy NOT checked (silero-vad is not installed)")

# Translations: this model is English-only, and says so (the SDK marks translations deprecated).
warnings.simplefilter("ignore", DeprecationWarning)
try:
    client.audio.translations.create(model="whisper-1", file=audio())
    raise SystemExit("sdk_check FAILED: an English-only model translated")
except openai.BadRequestError as e:
    check("English-only" in str(e), f"translation refusal: {e}")

# Refused with a 400 that names the field and says why.
refused("word granularity with json", ["timestamp_granularities[]", "verbose_json"], timestamp_granularities=["word"])
refused("logprobs with verbose_json", ["include[]", "json"], include=["logprobs"], response_format="verbose_json")
refused("speaker names", ["known_speaker_names[]", "diarization"], known_speaker_names=["agent"])
refused("speaker references", ["known_speaker_references[]", "diarization"],
        known_speaker_references=["data:audio/wav;base64,UklGRg=="])
refused("diarized_json", ["diarized_json", "diarization"], response_format="diarized_json")
refused("several languages", ["languages[]"], languages=["en", "fr"])
refused("an unknown model", ["gpt-4o-mini-transcribe", "tiny.en"], model="gpt-4o-mini-transcribe")
refused("a misspelt field", ["temperatur"], extra_body={"temperatur": 0.2})
refused("a bad temperature", ["temperature"], temperature=3)

print(f"sdk_check: openai {openai.__version__}, {checks} checks passed")
