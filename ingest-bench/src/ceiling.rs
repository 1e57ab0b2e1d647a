//! The ceiling: gzip alone over the very NDJSON the sink landed, at the same level and with the
//! same flate2 backend (zlib-rs), on one core and on every core.

use std::io::Write;
use std::time::Instant;

use flate2::write::GzEncoder;

/// How often gzip alone is timed on one thread: the median is the overhead factor's
/// denominator, the fastest and slowest bound how much that factor moves with the machine.
pub const ONE_CORE_TIMINGS: usize = 3;

/// Compression throughput in bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// The median of [`ONE_CORE_TIMINGS`] timings on one thread, by its CPU time.
    pub one_core: f64,
    /// The slowest and the fastest of those timings.
    pub one_core_range: (f64, f64),
    pub all_cores: f64,
    pub threads: usize,
}

/// The median and the (slowest, fastest) of throughputs (none empty).
pub fn median_and_range(mut speeds: Vec<f64>) -> (f64, (f64, f64)) {
    speeds.sort_by(f64::total_cmp);
    let median = speeds[speeds.len() / 2];
    (median, (speeds[0], speeds[speeds.len() - 1]))
}

/// Compresses `data` like the encoder does (256 KiB writes into one encoder per file).
fn gzip(data: &[u8], level: u32) -> usize {
    let mut gz = GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    for chunk in data.chunks(256 * 1024) {
        gz.write_all(chunk).expect("writing to a Vec cannot fail");
    }
    gz.finish().expect("writing to a Vec cannot fail").len()
}

/// Splits `data` into `n` pieces at line ends.
fn pieces(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for i in (1..=n).rev() {
        let want = rest.len() / i;
        let cut = rest[want..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| want + p + 1);
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// gzip alone at one level on one thread over the same NDJSON.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Level {
    pub level: u32,
    /// CPU seconds of one thread per GB of NDJSON.
    pub cpu_seconds_per_gb: f64,
    /// Compressed over uncompressed bytes.
    pub ratio: f64,
}

/// [`Level`] for each of `levels`, over at most the first `sample` bytes of `data` (cut at a
/// line end).
pub fn levels(data: &[u8], levels: &[u32], sample: usize) -> Vec<Level> {
    let data = if data.len() > sample {
        let cut = data[sample..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |p| sample + p + 1);
        &data[..cut]
    } else {
        data
    };
    levels
        .iter()
        .map(|&level| {
            let (seconds, out) = timed_gzip(data, level);
            Level {
                level,
                cpu_seconds_per_gb: seconds / (data.len() as f64 / 1e9),
                ratio: out as f64 / data.len().max(1) as f64,
            }
        })
        .collect()
}

/// [`gzip`] of `data` at `level` on this thread: its CPU seconds and the compressed size.
fn timed_gzip(data: &[u8], level: u32) -> (f64, usize) {
    let cpu = || {
        crate::procs::thread_cpu_seconds()
            .expect("/proc/thread-self/schedstat is readable on Linux")
    };
    let started = cpu();
    let out = std::hint::black_box(gzip(data, level));
    (cpu() - started, out)
}

pub fn measure(data: &[u8], level: u32) -> Ceiling {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // CPU time, as the sink's is: a wall clock would count the time a shared core ran others.
    // Timed more than once: on shared cores one timing moves by a fifth from minute to minute.
    let speeds = (0..ONE_CORE_TIMINGS)
        .map(|_| data.len() as f64 / timed_gzip(data, level).0)
        .collect();
    let (one_core, one_core_range) = median_and_range(speeds);
    let started = Instant::now();
    std::thread::scope(|s| {
        for piece in pieces(data, threads) {
            s.spawn(move || std::hint::black_box(gzip(piece, level)));
        }
    });
    let all_cores = data.len() as f64 / started.elapsed().as_secs_f64();
    Ceiling {
        one_core,
        one_core_range,
        all_cores,
        threads,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_and_the_range_of_the_timings() {
        assert_eq!(
            super::median_and_range(vec![3.0, 1.0, 2.0]),
            (2.0, (1.0, 3.0))
        );
        assert_eq!(super::median_and_range(vec![5.0]), (5.0, (5.0, 5.0)));
    }

    #[test]
    fn pieces_cover_the_data_at_line_ends() {
        let data = b"a\nbb\nccc\ndddd\n";
        for n in 1..6 {
            let p = super::pieces(data, n);
            assert_eq!(p.len(), n);
            assert_eq!(p.concat(), data);
            assert!(p.iter().all(|x| x.is_empty() || x.ends_with(b"\n")));
        }
    }
}
