//! A gzip member written in parts, so a file can be compressed piece by piece while its batch
//! is still filling, on whichever thread is free.
//!
//! Pure. Invariant: the parts concatenate into one standard gzip member (RFC 1952), as pigz
//! writes them: every part is raw deflate that ends on a byte boundary (a sync flush) and only
//! the last one sets the final-block bit; each part is primed with the last 32 KiB of text
//! before it, so matches may reach back across parts and the ratio is that of one stream.

use std::sync::Mutex;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// How far back deflate may refer: the text that primes the next part.
const WINDOW: usize = 32 * 1024;
/// Output room made before each deflate call.
const MIN_SPARE: usize = 16 * 1024;

/// A gzip member being written, part after part.
pub struct GzParts {
    level: u32,
    /// The header and the parts so far.
    out: Vec<u8>,
    crc: Crc,
    /// The last [`WINDOW`] bytes of text so far.
    window: Vec<u8>,
}

impl GzParts {
    /// A member at compression `level` (0–9); `capacity` is a guess of the compressed size.
    pub fn new(level: u32, capacity: usize) -> GzParts {
        let mut out = Vec::with_capacity(capacity.max(64));
        // A plain header, as flate2's `GzBuilder` writes it: no name, comment or extra field
        // (DuckDB, for one, rejects a comment), no modification time, OS unknown.
        let xfl = match level {
            9.. => 2,
            1 => 4,
            _ => 0,
        };
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
        GzParts {
            level,
            out,
            crc: Crc::new(),
            window: Vec::new(),
        }
    }

    /// Starts the next part.
    pub fn part(&mut self) -> Part<'_> {
        let mut deflate = take_deflate(self.level);
        if !self.window.is_empty() {
            // A raw stream accepts a dictionary right after it is created.
            deflate
                .set_dictionary(&self.window)
                .expect("a new raw deflate stream takes a dictionary");
        }
        Part {
            parts: self,
            deflate,
        }
    }

    /// The finished member. Its last part must have been ended with `last`.
    pub fn finish(mut self) -> Vec<u8> {
        let (crc, len) = (self.crc.sum(), self.crc.amount());
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out
    }

    /// Memory held: the output's capacity and the window.
    pub fn held_bytes(&self) -> usize {
        self.out.capacity() + self.window.capacity()
    }

    fn remember(&mut self, text: &[u8]) {
        if text.len() >= WINDOW {
            self.window.clear();
            self.window.extend_from_slice(&text[text.len() - WINDOW..]);
        } else {
            let excess = (self.window.len() + text.len()).saturating_sub(WINDOW);
            self.window.drain(..excess);
            self.window.extend_from_slice(text);
        }
    }
}

/// Deflate states kept for reuse (a new one allocates and clears about 300 KiB). Encoders run
/// one per core at a time, so that many are kept at most.
static SPARE: Mutex<Vec<(u32, Compress)>> = Mutex::new(Vec::new());

fn take_deflate(level: u32) -> Compress {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    match spare.iter().position(|(l, _)| *l == level) {
        Some(i) => spare.swap_remove(i).1,
        None => Compress::new(Compression::new(level), false),
    }
}

fn give_back(level: u32, mut deflate: Compress) {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < crate::cores::available() {
        deflate.reset();
        spare.push((level, deflate));
    }
}

/// One part of a [`GzParts`]: text written into it is compressed as one deflate stream.
pub struct Part<'a> {
    parts: &'a mut GzParts,
    deflate: Compress,
}

impl Part<'_> {
    /// Compresses `text` (more may follow in this part).
    pub fn write(&mut self, text: &[u8]) {
        self.run(text, FlushCompress::None);
        self.parts.crc.update(text);
        self.parts.remember(text);
    }

    /// Ends the part on a byte boundary; `last` ends the deflate stream too.
    pub fn end(mut self, last: bool) {
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        self.run(&[], flush);
        give_back(self.parts.level, self.deflate);
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress) {
        loop {
            let out = &mut self.parts.out;
            if out.capacity() - out.len() < MIN_SPARE {
                out.reserve(MIN_SPARE.max(out.len() / 2));
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, out, flush)
                .expect("deflate into memory cannot fail");
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done when the input is taken and, for a flush, deflate left output room unused.
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                _ => input.is_empty() && out.len() < out.capacity(),
            };
            if done {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"n\":{i},\"s\":\"line {} of the text\"}}\n", i % 97))
            .collect::<String>()
            .into_bytes()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn whole(text: &[u8]) -> Vec<u8> {
        let mut gz = GzParts::new(6, 0);
        let mut part = gz.part();
        part.write(text);
        part.end(true);
        gz.finish()
    }

    #[test]
    fn parts_make_one_member_that_any_reader_decodes() {
        let text = text(20_000);
        let mut gz = GzParts::new(6, 0);
        // Uneven parts, one of them empty, some with several writes.
        for piece in [
            &text[..10],
            &text[10..10],
            &text[10..300_000],
            &text[300_000..],
        ] {
            let mut part = gz.part();
            for w in piece.chunks(70_000) {
                part.write(w);
            }
            part.end(false);
        }
        gz.part().end(true);
        let bytes = gz.finish();
        // GzDecoder reads one member only: everything is in that one.
        assert_eq!(gunzip(&bytes), text);
        assert_eq!(bytes[3], 0, "no optional header fields (FLG = 0)");
        assert_eq!(gunzip(&whole(&text)), text);
        assert_eq!(gunzip(&whole(b"")), b"");
    }

    #[test]
    fn priming_keeps_the_ratio_of_one_stream() {
        let text = text(40_000);
        let one = whole(&text).len();
        let mut gz = GzParts::new(6, 0);
        for piece in text.chunks(64 * 1024) {
            let mut part = gz.part();
            part.write(piece);
            part.end(false);
        }
        gz.part().end(true);
        let parts = gz.finish().len();
        assert!(
            parts < one + one / 50,
            "{parts} bytes in parts of 64 KiB, {one} in one stream"
        );
    }
}
