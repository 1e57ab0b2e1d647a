//! A fast check that a record value is one JSON value, with serde_json's rules.
//!
//! Pure. Invariant: [`scan`] never accepts what `serde_json::from_slice::<IgnoredAny>` rejects
//! (a differential test holds it to that); when it does not accept, the caller asks serde_json,
//! which also words the error. serde_json's rules: whitespace is space, tab, CR and LF; strings
//! may hold any byte but `"`, `\` and control characters (no UTF-8 check), escapes are
//! `\" \\ \/ \b \f \n \r \t` or `\u` and four hex digits (surrogates unchecked); numbers are
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; nesting has no limit.

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// One JSON value; `compact` when it has raw line breaks or surrounding whitespace, so it
    /// must be compacted to fit on one line.
    Valid { compact: bool },
    /// Not valid, or nested deeper than this scanner tracks: ask serde_json.
    Unsure,
}

/// Containers this scanner tracks (one bit each: object or array).
const MAX_DEPTH: u32 = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is `"`, `\` or below 0x20; the lowest one is exact.
#[inline(always)]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// The index after the string whose opening quote is before `i`.
#[inline(always)]
fn string_end(v: &[u8], mut i: usize) -> Option<usize> {
    loop {
        if let Some(chunk) = v.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            let found = specials(w);
            if found == 0 {
                i += 8;
                continue;
            }
            i += (found.trailing_zeros() / 8) as usize;
        }
        match *v.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                i = match *v.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i + 2,
                    b'u' if v.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i + 6,
                    _ => return None,
                }
            }
            0..0x20 => return None,
            _ => i += 1,
        }
    }
}

#[inline(always)]
fn digits(v: &[u8], mut i: usize) -> usize {
    while v.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// The index after the number that starts at `i`.
#[inline(always)]
fn number_end(v: &[u8], mut i: usize) -> Option<usize> {
    if v[i] == b'-' {
        i += 1;
    }
    i = match *v.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(v, i + 1),
        _ => return None,
    };
    if v.get(i) == Some(&b'.') {
        let end = digits(v, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(v, i);
        if end == i {
            return None;
        }
        i = end;
    }
    // A digit right after a leading zero ("01") is not a number.
    (!v.get(i).is_some_and(u8::is_ascii_digit)).then_some(i)
}

/// Skips whitespace from `i`; notes raw line breaks.
#[inline(always)]
fn skip_ws(v: &[u8], mut i: usize, line_break: &mut bool) -> usize {
    // Compact JSON has no whitespace: one comparison.
    if v.get(i).is_some_and(|&b| b > b' ') {
        return i;
    }
    while let Some(&b) = v.get(i) {
        match b {
            b' ' | b'\t' => {}
            b'\n' | b'\r' => *line_break = true,
            _ => break,
        }
        i += 1;
    }
    i
}

/// After `{` or `,` in an object: the key, whitespace and the colon.
#[inline(always)]
fn key_end(v: &[u8], i: usize, line_break: &mut bool) -> Option<usize> {
    let i = skip_ws(v, i, line_break);
    if v.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(v, string_end(v, i + 1)?, line_break);
    (v.get(i) == Some(&b':')).then_some(i + 1)
}

/// Checks that `v` is exactly one JSON value (with whitespace around it).
pub fn scan(v: &[u8]) -> Scan {
    check(v).unwrap_or(Scan::Unsure)
}

fn check(v: &[u8]) -> Option<Scan> {
    let mut line_break = false;
    // Open containers: bit d set when the container at depth d is an object.
    let (mut depth, mut objects) = (0u32, 0u64);
    let mut i = 0;
    'value: loop {
        i = skip_ws(v, i, &mut line_break);
        match *v.get(i)? {
            b'"' => i = string_end(v, i + 1)?,
            b'-' | b'0'..=b'9' => i = number_end(v, i)?,
            b't' if v.get(i..i + 4) == Some(&b"true"[..]) => i += 4,
            b'f' if v.get(i..i + 5) == Some(&b"false"[..]) => i += 5,
            b'n' if v.get(i..i + 4) == Some(&b"null"[..]) => i += 4,
            open @ (b'[' | b'{') => {
                if depth == MAX_DEPTH {
                    return None;
                }
                let object = open == b'{';
                objects = objects & !(1 << depth) | (u64::from(object) << depth);
                depth += 1;
                let inner = skip_ws(v, i + 1, &mut line_break);
                let close = if object { b'}' } else { b']' };
                if v.get(inner) == Some(&close) {
                    depth -= 1;
                    i = inner + 1;
                } else {
                    i = if object {
                        key_end(v, inner, &mut line_break)?
                    } else {
                        inner
                    };
                    continue 'value;
                }
            }
            _ => return None,
        }
        // After a value: a comma, the end of its container, or the end of the text.
        loop {
            i = skip_ws(v, i, &mut line_break);
            if depth == 0 {
                if i != v.len() {
                    return None;
                }
                let padded = v.first().is_some_and(u8::is_ascii_whitespace)
                    || v.last().is_some_and(u8::is_ascii_whitespace);
                return Some(Scan::Valid {
                    compact: padded || line_break,
                });
            }
            let object = objects & (1 << (depth - 1)) != 0;
            match (*v.get(i)?, object) {
                (b',', false) => {
                    i += 1;
                    continue 'value;
                }
                (b',', true) => {
                    i = key_end(v, i + 1, &mut line_break)?;
                    continue 'value;
                }
                (b']', false) | (b'}', true) => {
                    depth -= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
