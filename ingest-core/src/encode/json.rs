//! A fast check that a record value is one JSON value that every reader can read: serde_json's
//! grammar, plus what a file of lines needs to stay readable as a whole (Python, DuckDB and
//! Spark reject or mangle a file holding one bad line): valid UTF-8, no lone surrogate escapes,
//! and at most [`MAX_NESTING`] levels of nesting.
//!
//! Pure. Invariant: [`scan`] never accepts what serde_json's grammar or [`strict`] rejects (a
//! differential test holds it to that); when it does not accept, the caller asks serde_json, which words a grammar
//! error, then [`strict`] for the rest. The grammar: whitespace is space, tab, CR and LF;
//! strings may hold any byte but `"`, `\` and control characters, escapes are
//! `\" \\ \/ \b \f \n \r \t` or `\u` and four hex digits; numbers are
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// One JSON value; `compact` when it has raw line breaks or surrounding whitespace, so it
    /// must be compacted to fit on one line.
    Valid { compact: bool },
    /// Not valid, or nested deeper than this scanner tracks: ask serde_json.
    Unsure,
}

/// Containers this scanner tracks (one bit each: object or array); deeper is left to
/// serde_json and [`strict`].
const MAX_DEPTH: u32 = 64;

/// Deepest nesting a record may have: serde_json's limit (where a transform's parse stops too),
/// far below where readers give up (Spark: 1,000).
pub const MAX_NESTING: usize = 128;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is `"`, `\`, below 0x20 or beyond ASCII; the lowest
/// one is exact.
#[inline(always)]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        // Below 0x20 the subtraction wraps; beyond ASCII the high bit is already set.
        | ((w.wrapping_sub(ONES * 0x20) | w) & HIGHS)
}

/// The index after the UTF-8 character that starts at `i` (a byte beyond ASCII), if it is one:
/// the well-formed sequences of the Unicode standard (table 3-7), so no overlong form, no
/// surrogate, nothing past U+10FFFF.
#[inline(always)]
fn utf8_char_end(v: &[u8], i: usize) -> Option<usize> {
    let next = |k: usize, lo: u8, hi: u8| v.get(i + k).is_some_and(|b| (lo..=hi).contains(b));
    let len = match v[i] {
        0xC2..=0xDF => 2,
        0xE0 if next(1, 0xA0, 0xBF) => 3,
        0xE1..=0xEC | 0xEE..=0xEF => 3,
        0xED if next(1, 0x80, 0x9F) => 3,
        0xF0 if next(1, 0x90, 0xBF) => 4,
        0xF1..=0xF3 => 4,
        0xF4 if next(1, 0x80, 0x8F) => 4,
        _ => return None,
    };
    (1..len).all(|k| next(k, 0x80, 0xBF)).then_some(i + len)
}

/// The code unit of the `\uXXXX` escape at `i` (the backslash), if its digits are hex.
#[inline(always)]
fn code_unit(v: &[u8], i: usize) -> Option<u32> {
    let hex = v.get(i + 2..i + 6)?;
    if v.get(i..i + 2) != Some(&b"\\u"[..]) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(hex).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// The index after the `\u` escape at `i` (the backslash): a character, or a surrogate pair as
/// two escapes; `None` for a lone surrogate, which stands for no character.
#[inline(always)]
fn unicode_escape_end(v: &[u8], i: usize) -> Option<usize> {
    match code_unit(v, i)? {
        0xD800..=0xDBFF if matches!(code_unit(v, i + 6), Some(0xDC00..=0xDFFF)) => Some(i + 12),
        0xD800..=0xDFFF => None,
        _ => Some(i + 6),
    }
}

/// The index after the string whose opening quote is before `i`, if every reader can read it:
/// each byte beyond ASCII must start a UTF-8 character. Only strings can hold such bytes (the
/// grammar stops at one anywhere else), so this checks the whole value's UTF-8 without a pass
/// over its ASCII.
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
                    b'u' => unicode_escape_end(v, i)?,
                    _ => return None,
                }
            }
            0..0x20 => return None,
            0x80.. => i = utf8_char_end(v, i)?,
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

/// Checks that `v` is exactly one JSON value (with whitespace around it) that [`strict`]
/// accepts too.
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

/// What serde_json's grammar allows but a file of lines must not hold: bytes that are not
/// UTF-8, `\u` escapes of lone surrogates, nesting deeper than [`MAX_NESTING`]. Expects `v` to
/// be valid JSON otherwise (serde_json checked it); the error says what is wrong and where.
pub fn strict(v: &[u8]) -> Result<(), String> {
    if let Err(e) = std::str::from_utf8(v) {
        return Err(format!(
            "not valid UTF-8 at byte {} (every reader of the file would reject it)",
            e.valid_up_to()
        ));
    }
    let (mut depth, mut in_string) = (0usize, false);
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        match (in_string, b) {
            (true, b'"') => in_string = false,
            (true, b'\\') if v.get(i + 1) == Some(&b'u') => {
                let Some(end) = unicode_escape_end(v, i) else {
                    return Err(format!(
                        "a \\u escape at byte {i} is a lone surrogate, which stands for no character"
                    ));
                };
                i = end;
                continue;
            }
            (true, b'\\') => i += 1,
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!("nested deeper than {MAX_NESTING} levels"));
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
