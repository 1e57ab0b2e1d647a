//! Avro's logical values as text: dates, times of day and timestamps as ISO 8601 / RFC 3339,
//! decimals as exact decimal strings.
//!
//! Pure. Invariant: a value that no four-digit year names is `None` (the caller writes the
//! number), and a decimal's text is exact, whatever its size.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike};

use super::schema::Unit;

/// Days since 1970-01-01 as `YYYY-MM-DD`.
pub fn date(days: i32) -> Option<String> {
    let d = NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)?;
    four_digit_year(d.year()).then(|| d.format("%Y-%m-%d").to_string())
}

fn four_digit_year(year: i32) -> bool {
    (0..=9999).contains(&year)
}

fn split(v: i64, unit: Unit) -> (i64, u32, usize) {
    let per_second = match unit {
        Unit::Millis => 1_000,
        Unit::Micros => 1_000_000,
        Unit::Nanos => 1_000_000_000,
    };
    let digits = match unit {
        Unit::Millis => 3,
        Unit::Micros => 6,
        Unit::Nanos => 9,
    };
    let secs = v.div_euclid(per_second);
    let frac = v.rem_euclid(per_second);
    let nanos = frac * (1_000_000_000 / per_second);
    (secs, nanos as u32, digits)
}

/// Time after midnight as `HH:MM:SS.fff` (millis) or `HH:MM:SS.ffffff` (micros).
pub fn time_of_day(v: i64, unit: Unit) -> Option<String> {
    let (secs, nanos, digits) = split(v, unit);
    let t = NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(secs).ok()?, nanos)?;
    let frac = t.nanosecond() as u64 / 10u64.pow(9 - digits as u32);
    Some(format!("{}.{frac:0digits$}", t.format("%H:%M:%S")))
}

/// A timestamp as RFC 3339 (`...Z`, UTC) or ISO 8601 without a zone (local), with as many
/// fraction digits as its unit has.
pub fn timestamp(v: i64, unit: Unit, utc: bool) -> Option<String> {
    let (secs, nanos, digits) = split(v, unit);
    let t = DateTime::from_timestamp(secs, nanos)?;
    if !four_digit_year(t.year()) {
        return None;
    }
    let frac = t.nanosecond() as u64 / 10u64.pow(9 - digits as u32);
    let zone = if utc { "Z" } else { "" };
    Some(format!(
        "{}.{frac:0digits$}{zone}",
        t.format("%Y-%m-%dT%H:%M:%S")
    ))
}

/// A two's-complement big-endian unscaled value with `scale` digits after the point, exactly.
pub fn decimal(bytes: &[u8], scale: u32) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // The magnitude, big-endian: the two's complement of a negative value.
    let mut magnitude: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    // Decimal digits by repeated division by 10 (values are a few dozen bytes at most).
    let mut digits = Vec::new();
    while magnitude.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in magnitude.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let (int, frac) = digits.split_at(digits.len() - scale);
    let mut text = String::with_capacity(digits.len() + 2);
    if negative {
        text.push('-');
    }
    text.push_str(std::str::from_utf8(int).unwrap_or("0"));
    if scale > 0 {
        text.push('.');
        text.push_str(std::str::from_utf8(frac).unwrap_or(""));
    }
    text
}
