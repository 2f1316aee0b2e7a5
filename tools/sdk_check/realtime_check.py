"""The server's realtime transcription WebSocket (/v1/realtime?intent=transcription) against the
official `openai` SDK's realtime clients: the GA client (`client.realtime.connect`) and the
beta one (`client.beta.realtime.connect`), every server event parsed into the SDK's own types.

Run by crates/amanuensis/tests/realtime.rs (python realtime_check.py BASE_URL TESTDATA) against
`amanuensis serve --model tiny.en --beam-size 1`. Exits non-zero on the first failed check.
While the streaming engine is not wired to the server, the transcript part prints
`ENGINE NOT WIRED` and is skipped.
"""

import asyncio
import base64
import struct
import sys
import wave

import openai
from openai import AsyncOpenAI
from openai.types import realtime as ga
from openai.types.beta import realtime as beta

BASE, TESTDATA = sys.argv[1], sys.argv[2]
CLIP = f"{TESTDATA}/audio/tts/s03.wav"  # 9.33 s, one sentence
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"realtime_check FAILED: {what}")
    checks += 1


def pcm24k(path, seconds_of_silence):
    """The 16 kHz WAV as 24 kHz PCM16 (linear interpolation), then silence."""
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        x = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    n = len(x) * 3 // 2
    out = []
    for i in range(n):
        t = i * 2 / 3
        k = int(t)
        a, b = x[min(k, len(x) - 1)], x[min(k + 1, len(x) - 1)]
        out.append(int(round(a + (b - a) * (t - k))))
    out += [0] * int(24000 * seconds_of_silence)
    return struct.pack(f"<{len(out)}h", *out)


async def recv(conn, timeout=60):
    return await asyncio.wait_for(conn.recv(), timeout)


async def ga_client():
    # The websocket URL derived from base_url (http -> ws), as most users configure it.
    client = AsyncOpenAI(base_url=f"{BASE}/v1", api_key="unused", max_retries=0)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await recv(conn)
        check(isinstance(created, ga.SessionCreatedEvent), f"session.created: {created!r}")
        check(created.session.type == "transcription", f"transcription session: {created.session!r}")
        check(created.session.audio.input.format.rate == 24000, "24 kHz by default")
        check(created.session.audio.input.turn_detection.type == "server_vad", "server VAD by default")

        await conn.session.update(session={
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500},
                "noise_reduction": {"type": "near_field"},
            }},
            "include": ["item.input_audio_transcription.partial", "item.input_audio_transcription.words"],
        })
        updated = await recv(conn)
        check(isinstance(updated, ga.SessionUpdatedEvent), f"session.updated: {updated!r}")
        check(updated.session.audio.input.transcription.language == "en", f"language: {updated.session!r}")

        # Bad audio is an error event in OpenAI's shape, and the session goes on.
        await conn.input_audio_buffer.append(audio="%%% not base64", event_id="bad_1")
        err = await recv(conn)
        check(isinstance(err, ga.RealtimeErrorEvent), f"error event: {err!r}")
        check(err.error.code == "invalid_audio" and err.error.event_id == "bad_1", f"error fields: {err.error!r}")
        check(err.error.type == "invalid_request_error" and "base64" in err.error.message, f"error text: {err.error!r}")
        await conn.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 44100}}}}})
        err = await recv(conn)
        check(isinstance(err, ga.RealtimeErrorEvent) and err.error.param == "session.audio.input.format.rate", f"rate refused: {err!r}")
        await conn.input_audio_buffer.clear()
        cleared = await recv(conn)
        check(isinstance(cleared, ga.InputAudioBufferClearedEvent), f"cleared: {cleared!r}")

        # Real speech at 4x real time in 100 ms appends, then silence that ends the turn.
        audio = pcm24k(CLIP, 2.0)
        step = 4800  # bytes: 100 ms at 24 kHz

        async def send_audio():
            for i in range(0, len(audio), step):
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + step]).decode())
                await asyncio.sleep(0.025)

        sender = asyncio.create_task(send_audio())
        events = []
        try:
            while True:
                ev = await recv(conn, 180)
                events.append(ev)
                if ev.type == "error":
                    if ev.error.code == "not_ready":
                        print("ENGINE NOT WIRED: the transcript part is skipped")
                        return
                    raise SystemExit(f"realtime_check FAILED: error while streaming: {ev.error!r}")
                if ev.type == "conversation.item.input_audio_transcription.completed":
                    break
        finally:
            sender.cancel()
        kinds = [e.type for e in events]
        check("input_audio_buffer.speech_started" in kinds, f"speech_started: {kinds}")
        started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
        check(isinstance(started, ga.InputAudioBufferSpeechStartedEvent) and started.audio_start_ms < 1000, f"{started!r}")
        stopped = [e for e in events if isinstance(e, ga.InputAudioBufferSpeechStoppedEvent)]
        committed = [e for e in events if isinstance(e, ga.InputAudioBufferCommittedEvent)]
        check(stopped and committed and committed[0].item_id == started.item_id, f"stopped/committed: {kinds}")
        deltas = [e for e in events if isinstance(e, ga.ConversationItemInputAudioTranscriptionDeltaEvent)]
        done = events[-1]
        check(isinstance(done, ga.ConversationItemInputAudioTranscriptionCompletedEvent), f"completed: {done!r}")
        check(done.item_id == started.item_id and done.content_index == 0, f"completed item: {done!r}")
        check("strange lights" in done.transcript.lower(), f"transcript: {done.transcript!r}")
        check("".join(d.delta for d in deltas).strip() == done.transcript.strip(), f"deltas {[d.delta for d in deltas]} vs {done.transcript!r}")
        check(done.usage is not None and done.usage.type == "duration", f"usage: {done.usage!r}")
        words = [w for d in deltas for w in (getattr(d, "words", None) or [])]
        check(words and all(w["start"] <= w["end"] for w in words), f"words (our include): {words[:3]}")
        print(f"GA transcript: {done.transcript}")


async def beta_client():
    host = BASE.split("://", 1)[1]
    client = AsyncOpenAI(base_url=f"{BASE}/v1", websocket_base_url=f"ws://{host}/v1", api_key="unused", max_retries=0)
    async with client.beta.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
        created = await recv(conn)
        check(created.type == "transcription_session.created", f"beta created: {created!r}")
        await conn.transcription_session.update(session={
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": None,
            "input_audio_noise_reduction": {"type": "far_field"},
        })
        updated = await recv(conn)
        check(isinstance(updated, beta.TranscriptionSessionUpdatedEvent), f"beta updated: {updated!r}")
        check(updated.session.turn_detection is None and updated.session.input_audio_format == "pcm16", f"beta session: {updated.session!r}")
        await conn.input_audio_buffer.commit()
        err = await recv(conn)
        check(isinstance(err, beta.ErrorEvent) and err.error.code == "input_audio_buffer_commit_empty", f"empty commit: {err!r}")


async def main():
    await beta_client()
    await ga_client()
    print(f"openai {openai.__version__}, realtime: {checks} checks passed")


asyncio.run(main())
