//! Word error rate and the English text normalizer used to compare transcripts with
//! references (ours and the peer's go through the same normalizer).

const ONES: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// Spells out 0..=9999 the way references write numbers ("10" → "ten", "1984" → "one thousand
/// nine hundred eighty four"); other tokens are returned unchanged.
fn spell_number(word: &str) -> Option<String> {
    let n: u32 = word.parse().ok()?;
    if word.len() > 4 {
        return None;
    }
    fn below_100(n: u32) -> String {
        if n < 20 {
            ONES[n as usize].to_string()
        } else if n % 10 == 0 {
            TENS[(n / 10) as usize].to_string()
        } else {
            format!("{} {}", TENS[(n / 10) as usize], ONES[(n % 10) as usize])
        }
    }
    fn below_1000(n: u32) -> String {
        match (n / 100, n % 100) {
            (0, r) => below_100(r),
            (h, 0) => format!("{} hundred", ONES[h as usize]),
            (h, r) => format!("{} hundred {}", ONES[h as usize], below_100(r)),
        }
    }
    Some(match (n / 1000, n % 1000) {
        (0, r) => below_1000(r),
        (t, 0) => format!("{} thousand", ONES[t as usize]),
        (t, r) => format!("{} thousand {}", ONES[t as usize], below_1000(r)),
    })
}

/// Lower-cases, drops punctuation (keeping in-word apostrophes), splits hyphenated words,
/// spells out small numbers and expands a few abbreviations.
pub fn normalize(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            c if c.is_alphanumeric() || c == '\'' => cleaned.extend(c.to_lowercase()),
            '-' | '—' | '–' | '/' => cleaned.push(' '),
            _ => cleaned.push(' '),
        }
    }
    let mut words = Vec::new();
    for w in cleaned.split_whitespace() {
        let w = w.trim_matches('\'');
        if w.is_empty() {
            continue;
        }
        let expanded = match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "dr" => "doctor".to_string(),
            "st" => "saint".to_string(),
            _ => spell_number(w).unwrap_or_else(|| w.to_string()),
        };
        words.extend(expanded.split(' ').map(str::to_string));
    }
    words
}

/// Word-level edit distance between `reference` and `hypothesis`.
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

/// Corpus WER over `(reference, hypothesis)` pairs: total errors / total reference words.
pub fn wer<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let (mut errors, mut words) = (0, 0);
    for (r, h) in pairs {
        let (r, h) = (normalize(r), normalize(h));
        errors += word_errors(&r, &h);
        words += r.len();
    }
    if words == 0 {
        0.0
    } else {
        errors as f64 / words as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer() {
        assert_eq!(normalize("Go forward 10 meters."), ["go", "forward", "ten", "meters"]);
        assert_eq!(normalize("And Mr. John's ill-disposed"), ["and", "mister", "john's", "ill", "disposed"]);
        assert_eq!(normalize("In 1984, 21 men"), ["in", "one", "thousand", "nine", "hundred", "eighty", "four", "twenty", "one", "men"]);
    }

    #[test]
    fn word_error_counts() {
        let w = |s: &str| normalize(s);
        assert_eq!(word_errors(&w("a b c"), &w("a b c")), 0);
        assert_eq!(word_errors(&w("a b c"), &w("a x c")), 1);
        assert_eq!(word_errors(&w("a b c"), &w("a c")), 1);
        assert_eq!(word_errors(&w("a b c"), &w("a b c d e")), 2);
        assert_eq!(word_errors(&w(""), &w("x")), 1);
        assert!((wer([("ten of clubs", "10 of clubs."), ("go forward", "go backward")]) - 0.2).abs() < 1e-12);
    }
}
