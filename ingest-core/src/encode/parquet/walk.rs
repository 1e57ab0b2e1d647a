//! Walking the bytes of one JSON value that the JSON check already accepted, without building
//! it: what a value is, where it ends, an object's members and an array's elements.
//!
//! Pure, and allocation-free except for a key with escapes. It does not validate (the check
//! did); on bytes that are not valid JSON its answers are unspecified, yet it never panics and
//! every walk ends (each step moves forward or stops at the end of the bytes).

use std::borrow::Cow;

/// What a value is, as serde_json would read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    /// An integer that fits an i64.
    Int,
    /// Any other finite number (serde_json reads larger integers as doubles too).
    Float,
    /// A number beyond a double's range: no column holds it, serde_json refuses it.
    Huge,
    Str,
    Array,
    Object,
}

/// The index of the first byte from `i` that is not whitespace.
#[inline(always)]
pub fn ws(v: &[u8], mut i: usize) -> usize {
    while matches!(v.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The kind of the value at `i` (no whitespace before it) and, for anything but an object or
/// an array (whose members the caller walks), the index after it; `i` for those two.
#[inline]
pub fn head(v: &[u8], i: usize) -> (Kind, usize) {
    match v.get(i) {
        Some(b'"') => (Kind::Str, string_end(v, i + 1)),
        Some(b'-' | b'0'..=b'9') => number(v, i),
        Some(b't') => (Kind::Bool, (i + 4).min(v.len())),
        Some(b'f') => (Kind::Bool, (i + 5).min(v.len())),
        Some(b'n') => (Kind::Null, (i + 4).min(v.len())),
        Some(b'[') => (Kind::Array, i),
        Some(b'{') => (Kind::Object, i),
        _ => (Kind::Null, v.len()),
    }
}

/// The index after the value at `i`.
#[inline]
pub fn skip(v: &[u8], i: usize) -> usize {
    match head(v, i) {
        (Kind::Array | Kind::Object, _) => container_end(v, i),
        (_, end) => end,
    }
}

/// The index after the string whose opening quote is just before `i`.
#[inline]
fn string_end(v: &[u8], i: usize) -> usize {
    string_end_escaped(v, i).0
}

/// As [`string_end`], and whether the string has an escape.
#[inline]
fn string_end_escaped(v: &[u8], mut i: usize) -> (usize, bool) {
    let mut escaped = false;
    while let Some(at) = memchr::memchr2(b'"', b'\\', v.get(i..).unwrap_or_default()) {
        i += at;
        if v[i] == b'"' {
            return (i + 1, escaped);
        }
        escaped = true;
        i += 2; // an escape: what follows the backslash is never a quote that ends the string
    }
    (v.len(), escaped)
}

fn number(v: &[u8], start: usize) -> (Kind, usize) {
    let mut i = start + usize::from(v.get(start) == Some(&b'-'));
    let digits = |mut i: usize| {
        while v.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_end = digits(i);
    let integer_digits = int_end - i;
    i = int_end;
    let fraction = v.get(i) == Some(&b'.');
    if fraction {
        i = digits(i + 1);
    }
    let exponent = matches!(v.get(i), Some(b'e' | b'E'));
    if exponent {
        i += 1 + usize::from(matches!(v.get(i + 1), Some(b'+' | b'-')));
        i = digits(i);
    }
    let text = || std::str::from_utf8(&v[start..i]).unwrap_or("x");
    // serde_json reads "-0" as the double -0.0, keeping its sign.
    let integer = !fraction && !exponent && &v[start..i] != b"-0";
    let kind = if integer
        && (integer_digits <= 18 || integer_digits <= 20 && text().parse::<i64>().is_ok())
    {
        Kind::Int
    } else if !exponent && integer_digits <= 300
        // below 1e301: finite
        || text().parse::<f64>().is_ok_and(f64::is_finite)
    {
        Kind::Float
    } else {
        Kind::Huge
    };
    (kind, i)
}

/// The index after the object or array at `i`.
fn container_end(v: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&b) = v.get(i) {
        match b {
            b'"' => {
                i = string_end(v, i + 1);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    v.len()
}

/// The text of a string value (`quoted`: its bytes with the quotes), escapes decoded.
pub fn text(quoted: &[u8]) -> Result<Cow<'_, str>, String> {
    match text_bytes(quoted)? {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|e| e.to_string()),
        Cow::Owned(b) => String::from_utf8(b)
            .map(Cow::Owned)
            .map_err(|e| e.to_string()),
    }
}

/// The bytes of a string value (`quoted`: its bytes with the quotes), escapes decoded. The
/// bytes are UTF-8 when the value was checked; they are not validated again here (an Arrow
/// string array validates its text once, when it is built).
pub fn text_bytes(quoted: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default();
    if memchr::memchr(b'\\', inner).is_none() {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_slice::<String>(quoted)
        .map(|s| Cow::Owned(s.into_bytes()))
        .map_err(|e| e.to_string())
}

/// One member of an object.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The key's bytes, quotes included, escapes as written.
    quoted_key: &'a [u8],
    /// Whether the key has an escape (its text is then not its bytes).
    escaped: bool,
    /// Where the member starts (its key's opening quote).
    pub start: usize,
    /// Where its value starts.
    pub value: usize,
}

impl<'a> Member<'a> {
    /// Whether the key is `name`.
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        if self.escaped {
            self.key() == name
        } else {
            same(self.unquoted(), name.as_bytes())
        }
    }

    /// Whether the key is one of `names`.
    #[inline]
    pub fn is_any(&self, names: &[&str]) -> bool {
        if self.escaped {
            let key = self.key();
            return names.iter().any(|n| key == *n);
        }
        // The first byte rules out most names before the comparison.
        let key = self.unquoted();
        names
            .iter()
            .any(|n| key.first() == n.as_bytes().first() && same(key, n.as_bytes()))
    }

    /// The key's bytes between the quotes.
    #[inline]
    fn unquoted(&self) -> &'a [u8] {
        &self.quoted_key[1..self.quoted_key.len().saturating_sub(1).max(1)]
    }

    /// The key as text (escapes decoded; empty if they do not decode, which a checked value
    /// never has).
    pub fn key(&self) -> Cow<'a, str> {
        text(self.quoted_key).unwrap_or_default()
    }
}

/// A step through an object's members or an array's elements.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Member(Member<'a>),
    /// An array element starting here.
    Element(usize),
    /// The container ended; the index after it.
    End(usize),
}

impl Step<'_> {
    /// The index after the container, once the walk through it is at its end (for a step not
    /// at the end: where the walk stopped).
    pub fn end(self) -> usize {
        match self {
            Step::End(end) => end,
            Step::Member(m) => m.value,
            Step::Element(at) => at,
        }
    }
}

/// Whether `a` and `b` are the same bytes. Keys are mostly short, and `==` on slices is a call
/// into libc's `memcmp`, which costs more than the comparison of a short key (profiled: 4 % of
/// the Parquet encoder); up to 16 bytes compare here as two words that may overlap.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The first member of the object at `i` (its `{`).
#[inline]
pub fn first_member(v: &[u8], i: usize) -> Step<'_> {
    member_at(v, ws(v, i + 1))
}

/// The member after the value that ended at `end`.
#[inline]
pub fn next_member(v: &[u8], end: usize) -> Step<'_> {
    let i = ws(v, end);
    match v.get(i) {
        Some(b',') => member_at(v, ws(v, i + 1)),
        _ => Step::End((i + 1).min(v.len())),
    }
}

fn member_at(v: &[u8], i: usize) -> Step<'_> {
    if v.get(i) != Some(&b'"') {
        return Step::End((i + 1).min(v.len()));
    }
    let (key_end, escaped) = string_end_escaped(v, i + 1);
    let colon = ws(v, key_end);
    Step::Member(Member {
        quoted_key: &v[i..key_end],
        escaped,
        start: i,
        value: ws(v, (colon + 1).min(v.len())),
    })
}

/// The first element of the array at `i` (its `[`).
#[inline]
pub fn first_element(v: &[u8], i: usize) -> Step<'_> {
    let i = ws(v, i + 1);
    match v.get(i) {
        Some(b']') | None => Step::End((i + 1).min(v.len())),
        Some(_) => Step::Element(i),
    }
}

/// The element after the value that ended at `end`.
#[inline]
pub fn next_element(v: &[u8], end: usize) -> Step<'_> {
    let i = ws(v, end);
    match v.get(i) {
        Some(b',') => Step::Element(ws(v, i + 1)),
        _ => Step::End((i + 1).min(v.len())),
    }
}

#[cfg(test)]
mod tests;
