//! `audio_decode`: arbitrary bytes as an uploaded file, decoded as the server decodes uploads
//! (`AudioInput::Bytes` streamed with a length limit, the container probed from the content).
//! Every outcome but a panic is fine (a panic inside a codec, which the decoder catches and
//! reports as a corrupt file, is an outcome); the samples must be finite and in [-1, 1].
#![no_main]

use whisper::audio::AudioInput;

/// libfuzzer-sys's panic hook aborts at every panic, even one the decoder catches: whisper's
/// `decode_guarded` turns a panic inside a codec (symphonia) into an error, by design. So the
/// hook here only records the message; a panic that escapes the decoder is printed and aborts
/// (a crash), one the guard caught is an outcome like any other error.
fn hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            LAST.with(|l| *l.borrow_mut() = info.to_string());
        }));
    });
}

thread_local!(static LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hook();
    // The first byte picks the extension hint, as an upload's file name would give it.
    let Some((&pick, bytes)) = data.split_first() else { return };
    const EXT: [Option<&str>; 7] = [None, Some("wav"), Some("mp3"), Some("ogg"), Some("flac"), Some("m4a"), Some("webm")];
    let ext = EXT[pick as usize % EXT.len()].map(str::to_string);
    let input = AudioInput::Bytes { data: bytes.to_vec(), ext };
    let mut bad = false;
    // 60 s: a tiny file that claims hours stops at the limit, as on the server.
    let escaped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = input.stream_limited(Some(60.0), &mut |s| {
            bad |= !s.iter().all(|x| x.is_finite() && (-1.0..=1.0).contains(x));
            Ok(())
        });
    }));
    if escaped.is_err() {
        eprintln!("a panic escaped the decoder: {}", LAST.with(|l| l.borrow().clone()));
        std::process::abort();
    }
    assert!(!bad, "a sample out of [-1, 1]");
});
