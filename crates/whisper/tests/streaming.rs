//! Streaming front end: `StreamingFeatures` windows against the whole-clip log-mel, sample
//! sources (in memory, spooled, gathered), and `AudioInput` (stdin-like readers, raw s16le).

use std::path::{Path, PathBuf};

use whisper::audio::{load_audio, AudioInput, Gather, SampleSource, SpooledSource, VecSource};
use whisper::features::StreamingFeatures;
use whisper::mel::{MelExtractor, N_FRAMES};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn data(rel: &str) -> PathBuf {
    Path::new(TESTDATA).join(rel)
}

/// Deterministic pseudo-random noise in [-0.5, 0.5).
fn noise(n: usize, mut seed: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Every window of `feats` equals the whole computation's, bit for bit.
fn check_windows<S: SampleSource>(samples: &[f32], feats: &StreamingFeatures<S>, what: &str) {
    let ext = MelExtractor::new(80).unwrap();
    let whole = ext.compute(samples);
    assert_eq!(feats.n_frames, whole.n_frames, "{what}: n_frames");
    let n = whole.n_frames;
    let mut starts = vec![0, 1, 2, n / 3, n.saturating_sub(1), n, n + 5];
    starts.extend((0..n).step_by(N_FRAMES / 2));
    for &start in &starts {
        for len in [1usize, 7, 100, N_FRAMES, N_FRAMES + 13] {
            let got = feats.window(start, len).unwrap();
            let want = whole.window(start, len);
            assert_eq!(got.n_frames, want.n_frames, "{what}: window {start}+{len}");
            assert!(
                got.data == want.data,
                "{what}: window {start}+{len} differs (max {})",
                got.data
                    .iter()
                    .zip(&want.data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
            );
            assert_eq!(
                got.pad_or_trim(N_FRAMES).data,
                want.pad_or_trim(N_FRAMES).data,
                "{what}: padded window {start}+{len}"
            );
        }
    }
}

#[test]
fn windows_equal_the_whole_computation() {
    // Real speech, and synthetic lengths around the edge cases (tiny clips that reflect more
    // than once, odd lengths, exact hops, longer than one 30 s window).
    let speech = load_audio(&data("audio/human/librivox_0870.wav")).unwrap();
    let mut long = noise(16_000 * 47 + 123, 7);
    long[300_000..310_000].iter_mut().for_each(|x| *x *= 1.9); // the max is mid-file
    let cases: Vec<(String, Vec<f32>)> = vec![
        ("speech".into(), speech),
        ("long noise".into(), long),
        ("empty".into(), vec![]),
        ("1 sample".into(), vec![0.3]),
        ("150".into(), noise(150, 1)),
        ("401".into(), noise(401, 2)),
        ("1599".into(), noise(1599, 3)),
        ("1600".into(), noise(1600, 4)),
        ("16001".into(), noise(16_001, 5)),
        ("4800 hop multiple".into(), noise(4800, 6)),
    ];
    for (what, samples) in &cases {
        let feats = StreamingFeatures::new(VecSource(samples.clone()), 80).unwrap();
        check_windows(samples, &feats, what);
    }
    // The same through a spooled file.
    let (what, samples) = &cases[1];
    let spooled: Box<dyn SampleSource> = Box::new(SpooledSource::from_samples(samples).unwrap());
    let feats = StreamingFeatures::new(spooled, 80).unwrap();
    check_windows(samples, &feats, &format!("{what} (spooled)"));
}

#[test]
fn gather_presents_ranges_as_one_source() {
    let base = noise(50_000, 9);
    let ranges = vec![100..2000, 2000..2001, 30_000..30_000, 40_000..50_000, 5..17];
    let want: Vec<f32> = ranges
        .iter()
        .flat_map(|r| base[r.clone()].to_vec())
        .collect();
    let g = Gather::new(VecSource(base.clone()), ranges.clone()).unwrap();
    assert_eq!(g.len(), want.len());
    assert_eq!(g.read(0..g.len()).unwrap(), want);
    for (a, b) in [
        (0, 1),
        (1899, 1902),
        (1900, 1901),
        (1901, 11_901),
        (11_890, want.len()),
    ] {
        assert_eq!(g.read(a..b).unwrap(), want[a..b], "{a}..{b}");
    }
    assert_eq!(g.inner_position(1900), 2000);
    assert_eq!(g.inner_position(1901), 40_000);
    let too_long = 49_000..50_001;
    assert!(Gather::new(VecSource(base.clone()), vec![too_long]).is_err());
    // Features of a gathered source equal those of the concatenated samples.
    let feats = StreamingFeatures::new(g, 80).unwrap();
    check_windows(&want, &feats, "gather");
    // Reading past the end is an error, not a panic.
    assert!(VecSource(base).read_into(49_999, &mut [0.0; 2]).is_err());
}

#[test]
fn spooled_input_equals_whole_decode() {
    for rel in [
        "audio/formats/librivox_0880_44k_stereo.mp3",
        "audio/resample/s01_44.1k_stereo.wav",
    ] {
        let path = data(rel);
        let whole = load_audio(&path).unwrap();
        let spooled = SpooledSource::from_input(AudioInput::Path(path.clone())).unwrap();
        assert_eq!(spooled.len(), whole.len(), "{rel}");
        assert_eq!(spooled.read(0..whole.len()).unwrap(), whole, "{rel}");
        assert_eq!(
            spooled.read(1000..1010).unwrap(),
            whole[1000..1010],
            "{rel}"
        );
        // A reader (what stdin is) gives the same samples.
        let reader = AudioInput::Reader {
            reader: Box::new(std::fs::File::open(&path).unwrap()),
            label: "<stdin>".into(),
            limit: 1 << 30,
        };
        assert_eq!(reader.decode().unwrap(), whole, "{rel} from a reader");
    }
}

#[test]
fn readers_refuse_empty_oversized_and_non_audio_input() {
    let reader = |bytes: Vec<u8>, limit: u64| AudioInput::Reader {
        reader: Box::new(std::io::Cursor::new(bytes)),
        label: "<stdin>".into(),
        limit,
    };
    let err = reader(vec![], 1000).decode().unwrap_err().to_string();
    assert!(err.contains("<stdin>") && err.contains("0 bytes"), "{err}");
    let wav = std::fs::read(data("audio/human/cards_001.wav")).unwrap();
    let err = reader(wav.clone(), 1000).decode().unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
    assert!(reader(wav, 1 << 20).decode().is_ok());
    let err = reader(b"hello, this is not audio at all".repeat(50), 1 << 20)
        .decode()
        .unwrap_err()
        .to_string();
    assert!(err.contains("<stdin>"), "{err}");
}

#[test]
fn raw_s16le_equals_the_same_samples_in_a_wav() {
    // The 44.1 kHz mono golden input, as headerless s16le.
    let wav = data("audio/resample/librivox_0880_44.1k_mono.wav");
    let bytes = std::fs::read(&wav).unwrap();
    let pcm = bytes[44..].to_vec(); // canonical 44-byte header (Python's wave module)
    let want = load_audio(&wav).unwrap();
    let raw = AudioInput::Bytes {
        data: pcm.clone(),
        ext: None,
    }
    .raw_s16le(44_100);
    assert_eq!(raw.decode().unwrap(), want);
    let spooled = SpooledSource::from_input(
        AudioInput::Reader {
            reader: Box::new(std::io::Cursor::new(pcm)),
            label: "<stdin>".into(),
            limit: 0, // raw input is streamed, not buffered: no limit applies
        }
        .raw_s16le(44_100),
    )
    .unwrap();
    assert_eq!(spooled.read(0..spooled.len()).unwrap(), want);
    // 16 kHz raw is pcm / 32768 exactly.
    let raw16 = AudioInput::Bytes {
        data: vec![0, 0x80, 1, 0, 0xff, 0x7f],
        ext: None,
    }
    .raw_s16le(16_000);
    assert_eq!(
        raw16.decode().unwrap(),
        vec![-1.0, 1.0 / 32768.0, 32767.0 / 32768.0]
    );
    let err = AudioInput::Bytes {
        data: vec![],
        ext: None,
    }
    .raw_s16le(16_000)
    .decode()
    .unwrap_err()
    .to_string();
    assert!(err.contains("0 bytes"), "{err}");
    assert!(AudioInput::Bytes {
        data: vec![1, 2],
        ext: None
    }
    .raw_s16le(5)
    .decode()
    .is_err());
}
