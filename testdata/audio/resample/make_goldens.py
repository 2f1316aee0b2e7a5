"""Makes the resampling test inputs and faster-whisper's decode of each (see README.md).

Run from this folder with the peer venv (faster-whisper 1.2.1, PyAV 18.1.0):
    ~/.cache/amanuensis-peer/venv/bin/python make_goldens.py

Inputs: 1 s of two 16 kHz speech clips, brought to 8, 22.05, 44.1 and 48 kHz with PyAV
(libswresample, s16 out), written as 16-bit WAV, mono and stereo (the stereo right channel is
the left one delayed by 37 samples at 0.6 gain, so the channels differ); plus 32-bit float stereo
WAV variants of the first clip (float input takes libswresample's float path); and `tiny_*`:
7 to 150 samples of the first clip at one rate (shorter than or near the filter length);
`librivox_0880_48k_6ch.wav`: 0.25 s, six channels (5.1), to test swr's 5.1 downmix.
Goldens: `<name>.npy`, int16, `faster_whisper.audio.decode_audio(<name>.wav) * 32768`.
"""

import wave
from pathlib import Path

import av
import numpy as np
from faster_whisper.audio import decode_audio

HERE = Path(__file__).resolve().parent
CLIPS = {
    "librivox_0880": HERE.parent / "human" / "librivox_0880.wav",
    "s01": HERE.parent / "tts" / "s01.wav",
}
RATES = [8000, 22050, 44100, 48000]
START, SECONDS = 8000, 1.0  # skip the first 0.5 s, keep 1 s


def read_wav16(path):
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def to_rate(pcm, rate):
    """16 kHz mono s16 -> `rate` Hz mono s16 through PyAV (deterministic)."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 16000
    res = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [f.to_ndarray().reshape(-1) for f in res.resample(frame) + res.resample(None)]
    return np.concatenate(out).astype(np.int16)


def write_wav(path, rate, channels):
    """channels: list of equal-length arrays, int16 (PCM) or float32 (IEEE float)."""
    data = np.stack(channels, axis=1)
    if data.dtype == np.int16:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(data.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(data.astype("<i2").tobytes())
        return
    # WAVE_FORMAT_IEEE_FLOAT (3), which the wave module does not write.
    body = data.astype("<f4").tobytes()
    n_ch = data.shape[1]
    fmt = np.array([3, n_ch], "<u2").tobytes() + np.array([rate, rate * 4 * n_ch], "<u4").tobytes()
    fmt += np.array([4 * n_ch, 32], "<u2").tobytes()
    riff = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    riff += b"data" + len(body).to_bytes(4, "little") + body
    path.write_bytes(b"RIFF" + len(riff).to_bytes(4, "little") + riff)


def pcm_of(clip):
    return read_wav16(CLIPS[clip])[START:START + int(SECONDS * 16000)]


def main():
    names = []
    for clip, src in CLIPS.items():
        pcm = read_wav16(src)[START:START + int(SECONDS * 16000)]
        for rate in RATES:
            x = to_rate(pcm, rate)
            right = np.concatenate([np.zeros(37, np.int16), x[:-37]])
            right = np.round(right.astype(np.float64) * 0.6).astype(np.int16)
            k = rate // 1000 if rate % 1000 == 0 else rate / 1000
            base = f"{clip}_{k}k"
            write_wav(HERE / f"{base}_mono.wav", rate, [x])
            write_wav(HERE / f"{base}_stereo.wav", rate, [x, right])
            names += [f"{base}_mono", f"{base}_stereo"]
            if clip == "librivox_0880":
                xf = x.astype(np.float32) / 32768
                rf = right.astype(np.float32) / 32768
                write_wav(HERE / f"{base}_stereo_f32.wav", rate, [xf, rf])
                names += [f"{base}_stereo_f32"]
    # Six channels (FFmpeg and symphonia both take a plain 6-channel WAV as 5.1): swr's
    # 5.1 -> mono matrix. 0.25 s at 48 kHz, channel k = x delayed 13k samples at gain g_k.
    x = to_rate(pcm_of("librivox_0880"), 48000)[:12000].astype(np.float64)
    gains = [1.0, 0.8, 0.6, 0.3, 0.5, 0.4]
    six = [np.round(np.roll(x, 13 * k) * g).astype(np.int16) for k, g in enumerate(gains)]
    write_wav(HERE / "librivox_0880_48k_6ch.wav", 48000, six)
    names.append("librivox_0880_48k_6ch")
    # Very short inputs (shorter than the filter) exercise the start/end mirrors together.
    pcm = read_wav16(CLIPS["librivox_0880"])[START:START + 16000]
    for rate, n in [(44100, 60), (44100, 150), (48000, 101), (22050, 47), (8000, 7), (8000, 40)]:
        x = to_rate(pcm, rate)[1000:1000 + n]
        k = rate // 1000 if rate % 1000 == 0 else rate / 1000
        write_wav(HERE / f"tiny_{k}k_{n}.wav", rate, [x])
        names.append(f"tiny_{k}k_{n}")
    for name in names:
        audio = decode_audio(str(HERE / f"{name}.wav"))
        pcm = np.round(audio * 32768).astype(np.int16)
        assert np.array_equal(pcm.astype(np.float32) / 32768, audio)
        np.save(HERE / f"{name}.npy", pcm)
        print(name, len(pcm))


if __name__ == "__main__":
    main()
