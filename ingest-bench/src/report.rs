//! The results: a Markdown table for people, one JSON line for machines (`BENCH_JSON {...}`),
//! and a CSV of throughput over time for the plot.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ceiling::{Ceiling, Level};
use crate::runs::{Backlog, Latency};

const MB: f64 = 1e6;

#[derive(Serialize)]
pub struct Report {
    pub machine: String,
    pub level: u32,
    /// The orders' ceiling (the NDJSON of the throughput run).
    pub ceiling_one_core_mb_s: f64,
    pub ceiling_all_cores_mb_s: f64,
    pub threads: usize,
    /// Each record kind's gzip-alone ceiling on its own landed NDJSON.
    pub ceilings: Vec<KindCeiling>,
    pub runs: Vec<Row>,
    /// With `--repeat`: each throughput run's factors over all its runs.
    pub repeated: Vec<Repeated>,
    pub latency: Option<Latency>,
    /// gzip alone at other levels, per record kind.
    pub levels: Vec<(String, Vec<Level>)>,
}

/// One record kind's overhead factor over repeated runs.
#[derive(Serialize)]
pub struct Repeated {
    pub kind: String,
    pub factors: Vec<f64>,
    pub median: f64,
    pub range: [f64; 2],
}

#[derive(Serialize)]
pub struct KindCeiling {
    pub kind: String,
    /// The median of the one-thread timings, and their slowest and fastest.
    pub one_core_mb_s: f64,
    pub one_core_range_mb_s: [f64; 2],
    pub all_cores_mb_s: f64,
}

/// One backlog run, in the units of the table.
#[derive(Serialize)]
pub struct Row {
    pub mode: String,
    pub kind: String,
    pub settings: String,
    pub partitions: i32,
    pub records: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub seconds: f64,
    pub startup_seconds: f64,
    /// CPU-seconds the sink spent before its first record (in `cpu_seconds_per_gb` too).
    pub startup_cpu_seconds: f64,
    pub cpu_seconds_per_gb: f64,
    /// gzip's CPU per byte (one core) over the sink's: the share of the sink's CPU that the
    /// ceiling would spend anyway, robust to other load on the machine.
    /// `None` for the three ceiling figures when no NDJSON landed to time gzip on (a Parquet
    /// run on its own).
    pub cpu_of_gzip: Option<f64>,
    /// The sink's CPU per GB over gzip alone's on the same bytes at the same level (one core):
    /// what a user pays over the compressor.
    pub overhead_factor: Option<f64>,
    /// The same over the slowest and over the fastest timing of gzip alone: how far the factor
    /// moves with the machine alone.
    pub overhead_factor_range: Option<[f64; 2]>,
    pub records_per_cpu_second: f64,
    /// Minor page faults and context switches per million records.
    pub page_faults_per_m_records: f64,
    pub context_switches_per_m_records: f64,
    /// Shares of the sink's CPU spent by its loop, librdkafka's threads and tokio's workers
    /// (see `procs::ThreadCpu`).
    pub cpu_split: [f64; 3],
    /// The workers' CPU per GB over gzip alone's: the part of the overhead factor spent where
    /// the compressing happens.
    pub workers_factor: Option<f64>,
    pub broker_cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub compression_ratio: f64,
    /// MB/s over the all-core gzip ceiling.
    pub of_ceiling: Option<f64>,
    /// `INGEST_MAX_BUFFER_BYTES` in MB, for the memory target.
    pub cap_mb: f64,
    /// A Delta run's table commits, and per minute of its run.
    pub table_commits: Option<u64>,
    pub table_commits_per_minute: Option<f64>,
}

impl Row {
    pub fn new(run: &Backlog, ceiling: &Ceiling, cap_bytes: u64) -> Row {
        let mb = run.uncompressed_bytes as f64 / MB;
        let settings = if run.settings.is_empty() {
            "defaults".to_string()
        } else {
            run.settings
                .iter()
                .map(|(k, v)| format!("{}={v}", k.trim_start_matches("INGEST_")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let measured = ceiling.one_core > 0.0 && ceiling.all_cores > 0.0;
        // gzip alone's CPU-seconds per GB at a one-thread speed in bytes per second.
        let gzip_cpu_per_gb_at = |speed: f64| 1000.0 / (speed / MB);
        let gzip_cpu_per_gb = gzip_cpu_per_gb_at(ceiling.one_core);
        let cpu_per_gb = run.cpu_seconds / (mb / 1000.0);
        let (slowest, fastest) = ceiling.one_core_range;
        Row {
            mode: run.mode.clone(),
            kind: run.kind.to_string(),
            settings,
            partitions: run.partitions,
            records: run.records,
            records_per_s: run.records as f64 / run.seconds,
            mb_per_s: mb / run.seconds,
            seconds: run.seconds,
            startup_seconds: run.startup_seconds,
            startup_cpu_seconds: run.startup_cpu_seconds,
            cpu_seconds_per_gb: cpu_per_gb,
            cpu_of_gzip: measured.then(|| gzip_cpu_per_gb / cpu_per_gb),
            overhead_factor: measured.then(|| cpu_per_gb / gzip_cpu_per_gb),
            overhead_factor_range: measured
                .then(|| [slowest, fastest].map(|speed| cpu_per_gb / gzip_cpu_per_gb_at(speed))),
            records_per_cpu_second: run.records as f64 / run.cpu_seconds,
            page_faults_per_m_records: run.page_faults as f64 / (run.records.max(1) as f64 / 1e6),
            context_switches_per_m_records: run.context_switches as f64
                / (run.records.max(1) as f64 / 1e6),
            cpu_split: [
                run.threads.main_loop,
                run.threads.librdkafka,
                run.threads.workers,
            ]
            .map(|t| t / run.cpu_seconds.max(f64::MIN_POSITIVE)),
            workers_factor: measured.then(|| run.threads.workers / (mb / 1000.0) / gzip_cpu_per_gb),
            broker_cpu_seconds: run.broker_cpu_seconds,
            peak_rss_mb: run.peak_rss_bytes as f64 / MB,
            compression_ratio: run.compressed_bytes as f64 / run.uncompressed_bytes.max(1) as f64,
            of_ceiling: measured.then(|| mb / run.seconds / (ceiling.all_cores / MB)),
            cap_mb: cap_bytes as f64 / MB,
            table_commits: run.table_commits,
            table_commits_per_minute: run.table_commits.map(|c| c as f64 / (run.seconds / 60.0)),
        }
    }
}

/// `0.56` as `56 %`; a figure with no ceiling to measure it against as `n/a`.
fn percent(share: Option<f64>) -> String {
    share.map_or("n/a".into(), |v| format!("{:.0} %", v * 100.0))
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Machine: {}. gzip level {}.\n", self.machine, self.level);
        let _ = writeln!(s, "| mode | record kind | settings (else defaults) | partitions | records | seconds | records/s | MB/s | of all-core ceiling | CPU s/GB (gzip's share) | overhead factor [range] (workers') | CPU by thread: loop / librdkafka / workers | records per CPU-s | page faults / ctx switches per M records | broker CPU s | peak RSS MB (cap) | gz ratio |");
        let _ = writeln!(
            s,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.1} | {} | {:.1} ({}) | {} | {} | {:.0} | {:.0} / {:.0} | {:.1} | {:.0} ({:.0}) | {:.3} |",
                r.mode, r.kind, r.settings, r.partitions, r.records, r.seconds, r.records_per_s,
                r.mb_per_s, percent(r.of_ceiling), r.cpu_seconds_per_gb, percent(r.cpu_of_gzip),
                match (r.overhead_factor, r.overhead_factor_range, r.workers_factor) {
                    (Some(f), Some([lo, hi]), Some(w)) => format!("{f:.2} [{lo:.2}–{hi:.2}] ({w:.2})"),
                    _ => "n/a".into(),
                },
                r.cpu_split.map(|x| format!("{:.0}", x * 100.0)).join(" / ") + " %",
                r.records_per_cpu_second,
                r.page_faults_per_m_records, r.context_switches_per_m_records,
                r.broker_cpu_seconds, r.peak_rss_mb, r.cap_mb, r.compression_ratio
            );
        }
        let _ = writeln!(
            s,
            "\nOverhead factor: the sink's CPU-seconds per GB over what gzip level {} alone (same crate, one thread, its CPU time) spends on the same NDJSON in this run, timed {} times right after the sinks' runs: over the median, and in square brackets over the slowest and the fastest timing; in round brackets, the same for the sink's tokio workers alone (encoding, compressing, uploads). CPU by thread: the service's loop (intake), librdkafka's threads (fetching), the workers.",
            self.level, crate::ceiling::ONE_CORE_TIMINGS
        );
        for r in &self.runs {
            if let (Some(c), Some(per_minute)) = (r.table_commits, r.table_commits_per_minute) {
                let _ = writeln!(
                    s,
                    "\nThe {} run's Delta table: {c} commits in {:.1} s ({per_minute:.1} a minute): the first creates the table, each other adds every file landed since the one before (one every INGEST_DELTA_COMMIT_INTERVAL_MS, 10 s by default, and one at the stop).",
                    r.mode, r.seconds
                );
            }
        }
        for r in &self.repeated {
            let _ = writeln!(
                s,
                "\nOverhead factor of the {} over {} runs (each against gzip timed right after it): median {:.2}, range {:.2}–{:.2}.",
                r.kind, r.factors.len(), r.median, r.range[0], r.range[1]
            );
        }
        // A run that landed no NDJSON (Parquet and Delta alone, the flood) timed no gzip.
        for c in self.ceilings.iter().filter(|c| c.one_core_mb_s.is_finite()) {
            let _ = writeln!(
                s,
                "\ngzip-only ceiling on the {} NDJSON: {:.1} MB/s on one core (median; {:.1}–{:.1}), {:.1} MB/s on {} threads.",
                c.kind, c.one_core_mb_s, c.one_core_range_mb_s[0], c.one_core_range_mb_s[1],
                c.all_cores_mb_s, self.threads
            );
        }
        if !self.levels.is_empty() {
            let _ = writeln!(
                s,
                "\ngzip alone by level (one thread, same NDJSON): CPU s/GB and output ratio.\n"
            );
            let _ = writeln!(s, "| record kind | level | CPU s/GB | output ratio |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for (kind, levels) in &self.levels {
                for l in levels {
                    let _ = writeln!(
                        s,
                        "| {kind} | {} | {:.1} | {:.3} |",
                        l.level, l.cpu_seconds_per_gb, l.ratio
                    );
                }
            }
        }
        let by_mode = |m: &str| self.runs.iter().find(|r| r.mode == m);
        if let (Some(nd), Some(pq)) = (by_mode("throughput"), by_mode("parquet")) {
            let _ = writeln!(
                s,
                "\nParquet (same records, its row's MB are the NDJSON's): {:.2}× the NDJSON+gzip-{} output, {:.2}× its CPU per GB.",
                pq.compression_ratio / nd.compression_ratio,
                self.level,
                pq.cpu_seconds_per_gb / nd.cpu_seconds_per_gb
            );
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "\nLatency ({} records/s over {} partitions, FLUSH_MAX_AGE_MS={}, ENVELOPE=metadata): \
                 produce → file visible p50 {} ms, p99 {} ms, max {} ms over {} records.",
                l.rate_per_s, l.partitions, l.flush_max_age_ms, l.p50_ms, l.p99_ms, l.max_ms, l.measured_records
            );
        }
        s
    }

    pub fn json_line(&self) -> String {
        format!(
            "BENCH_JSON {}",
            serde_json::to_string(self).expect("serialisable")
        )
    }
}

/// `mode,t_s,records,landed_bytes,rss_bytes` for every sample of every run.
pub fn csv(runs: &[Backlog]) -> String {
    let mut s = String::from("mode,t_s,records,landed_bytes,rss_bytes,mean_line_bytes\n");
    for run in runs {
        let mean = run.uncompressed_bytes as f64 / run.records.max(1) as f64;
        for x in &run.samples {
            let _ = writeln!(
                s,
                "{},{:.3},{},{},{},{mean:.1}",
                run.mode, x.t_s, x.records, x.landed_bytes, x.rss_bytes
            );
        }
    }
    s
}
