//! `audio_decode`: arbitrary bytes as an uploaded file, decoded as the server decodes uploads
//! (`AudioInput::Bytes` streamed with a length limit, the container probed from the content).
//! Every outcome but a panic is fine (a panic inside a codec, which the decoder catches and
//! reports as a corrupt file, is an outcome); the samples must be finite and in [-1, 1].
#![no_main]

use whisper::audio::AudioInput;

/// libfuzzer-sys's panic hook aborts at every panic, even one the decoder catches: whisper's
/// `decode_guarded` turns a panic inside a codec (symphonia) into an error, by design, so here
/// such a panic is let through silently; any panic that escapes the decoder still aborts
/// (libfuzzer-sys aborts when the target unwinds), and is a crash.
fn hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_codec = info.location().is_some_and(|l| l.file().contains("/symphonia"));
            if !in_codec {
                fuzzer_hook(info);
            }
        }));
    });
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hook();
    // The first byte picks the extension hint, as an upload's file name would give it.
    let Some((&pick, bytes)) = data.split_first() else { return };
    const EXT: [Option<&str>; 7] = [None, Some("wav"), Some("mp3"), Some("ogg"), Some("flac"), Some("m4a"), Some("webm")];
    let ext = EXT[pick as usize % EXT.len()].map(str::to_string);
    let input = AudioInput::Bytes { data: bytes.to_vec(), ext };
    // 60 s: a tiny file that claims hours stops at the limit, as on the server.
    let _ = input.stream_limited(Some(60.0), &mut |s| {
        assert!(s.iter().all(|x| x.is_finite() && (-1.0..=1.0).contains(x)), "a sample out of [-1, 1]");
        Ok(())
    });
});
