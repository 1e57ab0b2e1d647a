//! Text values read as the typed columns a schema registry declares: exact decimals, UTC and
//! local timestamps, dates and base64 bytes, as the registry decoders write them
//! ([`crate::registry`]).
//!
//! Pure. Invariant: a text is read only when its column holds it exactly (no digit of a decimal
//! dropped, no fraction of a microsecond, no out-of-range date); any other text is `None`, and
//! its record keeps the value in `_rescued_data`.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Decimal digits an `i128` always holds (Arrow's Decimal128).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// `text` (`-12.340`: an optional minus, digits, an optional point and digits) as the unscaled
/// value of a decimal with `scale` digits after the point and at most `precision` in all.
pub fn decimal(text: &[u8], precision: u8, scale: i8) -> Option<i128> {
    let scale = usize::try_from(scale).ok()?;
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[][..]),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if int.is_empty() || !digits(int) || !digits(frac) || (text.contains(&b'.') && frac.is_empty())
    {
        return None;
    }
    // Trailing zeros past the scale are exact; any other digit there is not.
    let (kept, dropped) = frac.split_at(frac.len().min(scale));
    if dropped.iter().any(|&d| d != b'0') {
        return None;
    }
    let int = &int[int.iter().position(|&d| d != b'0').unwrap_or(int.len())..];
    if int.len() + scale > usize::from(precision) {
        return None;
    }
    let mut n: i128 = 0;
    let padding = std::iter::repeat_n(&b'0', scale - kept.len());
    for &d in int.iter().chain(kept).chain(padding) {
        n = n.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

/// A timestamp as microseconds since the epoch: RFC 3339 with its zone (`utc`), or ISO 8601
/// without one (local). `None` past a microsecond's precision.
pub fn timestamp_micros(text: &[u8], utc: bool) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let (micros, nanos) = if utc {
        let t = DateTime::parse_from_rfc3339(text).ok()?;
        (t.timestamp_micros(), t.timestamp_subsec_nanos())
    } else {
        let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        let t = t.and_utc();
        (t.timestamp_micros(), t.timestamp_subsec_nanos())
    };
    (nanos % 1_000 == 0).then_some(micros)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn date_days(text: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(text).ok()?;
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(day.signed_duration_since(epoch).num_days()).ok()
}

/// Standard base64 (with padding) as its bytes.
pub fn base64(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_or_not_at_all() {
        assert_eq!(decimal(b"12.34", 10, 2), Some(1234));
        assert_eq!(decimal(b"-0.05", 10, 2), Some(-5));
        assert_eq!(decimal(b"7", 10, 2), Some(700));
        assert_eq!(decimal(b"7.5", 10, 2), Some(750));
        assert_eq!(decimal(b"1.230", 10, 2), Some(123));
        assert_eq!(decimal(b"0012.00", 4, 2), Some(1200));
        // A digit the scale cannot hold, more digits than the precision, not a decimal.
        assert_eq!(decimal(b"1.235", 10, 2), None);
        assert_eq!(decimal(b"123.45", 4, 2), None);
        for bad in [
            &b""[..],
            b"-",
            b"1.",
            b".5",
            b"1e3",
            b"1,5",
            b"--1",
            b" 1",
            b"NaN",
        ] {
            assert_eq!(
                decimal(bad, 10, 2),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let widest = "9".repeat(38);
        assert_eq!(decimal(widest.as_bytes(), 38, 0), Some(10i128.pow(38) - 1));
        assert_eq!(decimal(format!("{widest}9").as_bytes(), 38, 0), None);
    }

    #[test]
    fn timestamps_are_read_to_the_microsecond() {
        assert_eq!(
            timestamp_micros(b"2024-02-29T23:59:58.123456Z", true),
            Some(1_709_251_198_123_456)
        );
        assert_eq!(
            timestamp_micros(b"1970-01-01T00:00:00.001Z", true),
            Some(1_000)
        );
        assert_eq!(
            timestamp_micros(b"1969-12-31T23:59:59.999Z", true),
            Some(-1_000)
        );
        assert_eq!(
            timestamp_micros(b"1970-01-01T01:00:00+01:00", true),
            Some(0)
        );
        assert_eq!(
            timestamp_micros(b"2024-02-29T23:59:58.123456", false),
            Some(1_709_251_198_123_456)
        );
        // Nanoseconds a microsecond column cannot hold; a zone where none belongs, and none
        // where one must be.
        assert_eq!(
            timestamp_micros(b"1970-01-01T00:00:00.000000001Z", true),
            None
        );
        assert_eq!(timestamp_micros(b"1970-01-01T00:00:00.000Z", false), None);
        assert_eq!(timestamp_micros(b"1970-01-01T00:00:00.000", true), None);
        assert_eq!(timestamp_micros(b"yesterday", true), None);
    }

    #[test]
    fn dates_and_bytes() {
        assert_eq!(date_days(b"1970-01-01"), Some(0));
        assert_eq!(date_days(b"1969-12-31"), Some(-1));
        assert_eq!(date_days(b"2024-02-29"), Some(19_782));
        assert_eq!(date_days(b"2023-02-29"), None);
        assert_eq!(base64(b"AAH/"), Some(vec![0, 1, 255]));
        assert_eq!(base64(b""), Some(vec![]));
        assert_eq!(base64(b"not base64!"), None);
    }
}
