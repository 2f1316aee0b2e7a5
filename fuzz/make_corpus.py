#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/ (run from anywhere; stdlib
only). Audio seeds are real files from testdata/ cut short (a few KB each); the model seeds are
small CTranslate2 files built here in the real layout; the rest are hand-written requests,
events and stored jobs. Re-running it rewrites the same files."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def testdata(rel):
    with open(os.path.join(ROOT, "testdata", "audio", rel), "rb") as f:
        return f.read()


# ---- audio_decode: first byte = extension hint index (0 none, 1 wav, 2 mp3, 3 ogg, 4 flac, 5 m4a)
def wav_cut(data, payload):
    """A WAV's chunks up to `data`, with `payload` bytes of samples and the sizes fixed."""
    i, out = 12, bytearray(data[:12])
    while i + 8 <= len(data):
        cid, n = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        if cid == b"data":
            body = data[i + 8:i + 8 + min(n, payload)]
            out += b"data" + struct.pack("<I", len(body)) + body
            break
        out += data[i:i + 8 + n + (n & 1)]
        i += 8 + n + (n & 1)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


for name, hint in [("human/librivox_0880.wav", 1), ("formats/librivox_0880_u8.wav", 0), ("formats/librivox_0880_s24.wav", 1),
                   ("formats/librivox_0880_f32.wav", 1), ("formats/librivox_0880_1s_f64.wav", 0), ("formats/librivox_0880_1s_s32.wav", 1),
                   ("formats/librivox_0880_44k_stereo.wav", 1)]:
    put("audio_decode", os.path.basename(name), bytes([hint]) + wav_cut(testdata(name), 2048))
for name, hint, keep in [("formats/librivox_0880.flac", 4, 4096), ("formats/librivox_0880.ogg", 3, 4096), ("formats/librivox_0880_44k_stereo.mp3", 2, 3072)]:
    put("audio_decode", os.path.basename(name), bytes([hint]) + testdata(name)[:keep])
# m4a: ftyp, free, mdat cut to 2 KB, moov (whose sample table then runs past the data).
m4a = testdata("formats/librivox_0880_48k.m4a")
boxes, i = {}, 0
while i < len(m4a):
    n, t = struct.unpack(">I4s", m4a[i:i + 8])
    boxes[t] = m4a[i:i + n]
    i += n
mdat = boxes[b"mdat"][8:8 + 2048]
put("audio_decode", "librivox_0880_48k.m4a", bytes([5]) + boxes[b"ftyp"] + boxes[b"free"] + struct.pack(">I4s", 8 + len(mdat), b"mdat") + mdat + boxes[b"moov"])
# Raw PCM-looking bytes with no header, and an empty-data WAV.
put("audio_decode", "headerless", bytes([0]) + bytes(range(256)) * 4)
put("audio_decode", "empty_data.wav", bytes([1]) + wav_cut(testdata("human/cards_001.wav"), 0))


# ---- ct2_reader: CTranslate2 model.bin (version, spec, variables, aliases), or a config.json
def s(text):
    b = text.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def var(name, shape, dtype=0, data=None):
    size = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}[dtype]
    n = 1
    for d in shape:
        n *= d
    data = data if data is not None else bytes(n * size)
    return s(name) + bytes([len(shape)]) + b"".join(struct.pack("<I", d) for d in shape) + bytes([dtype]) + struct.pack("<I", len(data)) + data


def model(variables, aliases=(), version=6, spec="WhisperSpec"):
    out = struct.pack("<I", version) + s(spec) + struct.pack("<I", 1) + struct.pack("<I", len(variables)) + b"".join(variables)
    out += struct.pack("<I", len(aliases)) + b"".join(s(a) + s(t) for a, t in aliases)
    return out


d = 1  # model width: the smallest shapes that pass the dimension checks
whisper_vars = [
    var("encoder/conv1/weight", [d, 80, 3]),
    var("encoder/position_encodings/encodings", [2, d]),
    var("encoder/num_heads", [], 3, struct.pack("<i", 1)),
    var("encoder/layer_0/ffn/linear_0/weight", [4 * d, d], 1),
    var("encoder/layer_0/ffn/linear_0/weight_scale", [4 * d], 0, struct.pack("<4f", 1, 2, 3, 4)),
    var("decoder/embeddings/weight", [4, d], 4),
    var("decoder/position_encodings/encodings", [3, d], 5),
    var("decoder/num_heads", [], 2, struct.pack("<h", 1)),
    var("decoder/layer_0/ffn/linear_0/weight", [4 * d, d], 0),
]
put("ct2_reader", "tiny_whisper.bin", model(whisper_vars, [("decoder/layer_0/ffn/linear_0/alias", "decoder/layer_0/ffn/linear_0/weight")]))
put("ct2_reader", "version4.bin", model(whisper_vars[:3], version=4))
put("ct2_reader", "other_spec.bin", model([var("x", [2, 2], 3)], spec="TransformerSpec"))
put("ct2_reader", "empty_model.bin", model([]))
put("ct2_reader", "config.json", json.dumps({"alignment_heads": [[1, 0], [2, 5]], "lang_ids": [50259, 50260], "suppress_ids": [1, 2, 7],
                                             "suppress_ids_begin": [220, 50256]}))

# ---- multipart: first line = Content-Type, then the body (CRLF framing, boundary B)
def form(parts, boundary="B"):
    out = ""
    for p in parts:
        name, value = p[0], p[1]
        fn = f'; filename="{p[2]}"' if len(p) > 2 else ""
        ct = "\r\nContent-Type: audio/wav" if fn else ""
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{fn}{ct}\r\n\r\n{value}\r\n'
    return f"multipart/form-data; boundary={boundary}\n" + out + f"--{boundary}--\r\n"


put("multipart", "openai", form([("file", "RIFF....WAVEfmt ", "a.wav"), ("model", "whisper-1"), ("response_format", "verbose_json"),
                                 ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment"), ("include[]", "logprobs"),
                                 ("temperature", "0.2"), ("language", "en")]))
put("multipart", "chunking", form([("file", "x", "a.mp3"), ("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "0.4"),
                                   ("chunking_strategy[prefix_padding_ms]", "300"), ("chunking_strategy[silence_duration_ms]", "500"), ("stream", "true")]))
put("multipart", "chunking_whole", form([("file", "x", "a.mp3"), ("chunking_strategy", '{"type":"server_vad","threshold":0.5}')]))
put("multipart", "native", form([("file", "x", "a.flac"), ("vad_filter", "true"), ("vad_threshold", "0.3"), ("vad_min_silence_duration_ms", "200"),
                                 ("beam_size", "5"), ("clip_timestamps", "[0, 12.5, 20]"), ("suppress_tokens", "-1,50,51"), ("no_repeat_ngram_size", "2"),
                                 ("repetition_penalty", "1.1"), ("word_timestamps", "true"), ("hallucination_silence_threshold", "2"),
                                 ("prefix", "Hello"), ("hotwords", "amanuensis"), ("compression_ratio_threshold", "2.4")]))
put("multipart", "job_webhook", form([("file", "x", "a.wav"), ("webhook_url", "http://127.0.0.1:9/hook"), ("response_format", "srt")]))
put("multipart", "duplicate", form([("file", "x", "a.wav"), ("model", "a"), ("model", "b"), ("file", "y", "b.wav")]))
put("multipart", "unknown_field", form([("nonsense", "1"), ("file", "x", "a.wav")]))
put("multipart", "quoted_boundary", 'multipart/form-data; boundary="q q"\n--q q\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc\r\n--q q--\r\n')
put("multipart", "truncated", form([("file", "x" * 40, "a.wav")])[:-12])

# ---- realtime_event: one client event per line
ev = lambda v: json.dumps(v)
put("realtime_event", "ga_session", "\n".join([
    ev({"type": "session.update", "event_id": "e1", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1", "language": "en", "prompt": "hi"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500},
        "noise_reduction": None}}, "include": ["item.input_audio_transcription.partial", "item.input_audio_transcription.words"]}}),
    ev({"type": "input_audio_buffer.append", "audio": "AAABAAIAAwAEAAUABgAHAAgACQAKAAsADAANAA4ADwAQABEA"}),
    ev({"type": "input_audio_buffer.commit", "event_id": "e2"}),
    ev({"type": "input_audio_buffer.clear"}),
]))
put("realtime_event", "beta_session", "\n".join([
    ev({"type": "transcription_session.update", "session": {"input_audio_format": "pcm16", "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "fr"},
                                                            "turn_detection": None, "input_audio_noise_reduction": {"type": "near_field"}, "include": []}}),
    ev({"type": "input_audio_buffer.append", "audio": "//8AAP//AAA="}),
]))
put("realtime_event", "rate16k_manual", "\n".join([
    ev({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}}}}),
    ev({"type": "input_audio_buffer.append", "audio": "AAA="}),
    ev({"type": "input_audio_buffer.append", "audio": 5}),
    ev({"type": "response.create"}),
    "not json",
]))

# ---- jobs_json: a stored result ({"transcript", "ask", "task", "token_logprobs", "response_format"}) or fields
seg = {"id": 1, "seek": 0, "start": 0.0, "end": 2.5, "text": " Hello there.", "tokens": [50363, 2425, 612, 13, 50488], "temperature": 0.0,
       "avg_logprob": -0.2, "compression_ratio": 0.8, "no_speech_prob": 0.01,
       "words": [{"word": " Hello", "start": 0.0, "end": 0.9, "probability": 0.9}, {"word": " there.", "start": 0.9, "end": 2.5, "probability": 0.8}]}
seg2 = dict(seg, id=2, start=2.5, end=4.0, text=" Bye -->", words=None)
put("jobs_json", "result", json.dumps({"transcript": {"language": "en", "language_probability": 1.0, "duration": 4.0, "segments": [seg, seg2]},
                                       "ask": {"words": True, "segments": True, "logprobs": True, "usage": True}, "task": "transcribe",
                                       "token_logprobs": [[-0.1, -0.2, -0.3], [-0.5]], "response_format": "verbose_json"}))
put("jobs_json", "bare_transcript", json.dumps({"language": "de", "duration": 1e9, "segments": [dict(seg, id=0, start=-1.0, end=1e12)]}))
put("jobs_json", "fields", json.dumps([["response_format", "srt"], ["language", "en"], ["timestamp_granularities[]", "word"]]))
put("jobs_json", "empty", json.dumps({"transcript": {"segments": []}}))
