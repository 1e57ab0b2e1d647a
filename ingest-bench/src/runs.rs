//! The runs: a backlog drained by the sink (throughput and memory modes) and a steady stream
//! (latency mode). Completion is an event (committed offsets reach the high watermarks), never a
//! fixed sleep; the loops below only pace how often they look.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::producer::Producer;
use serde::Serialize;

use crate::broker::{self, CommitWatch};
use crate::landed;
use crate::procs::{self, BrokerProcess, SinkProcess};
use crate::records::Records;

/// Gives up (an error, not a measurement) if a run hangs this long.
const HANG_GUARD: Duration = Duration::from_secs(900);
/// How often a running sink's /metrics is read once it has started consuming.
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

/// One sample of a backlog run, every 0.5 s.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub records: i64,
    pub landed_bytes: u64,
    pub rss_bytes: u64,
}

/// What a backlog run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub mode: String,
    /// Which records (their name in the table).
    pub kind: &'static str,
    pub partitions: i32,
    pub records: u64,
    pub settings: Vec<(String, String)>,
    /// From the sink's first consumed record to the last commit.
    pub seconds: f64,
    /// From the sink process's start to its first consumed record (group join).
    pub startup_seconds: f64,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    pub cpu_seconds: f64,
    /// Of `cpu_seconds`, what the sink had used by its first consumed record (start-up, group
    /// join): paid once per process, not per GB, yet counted in the factor.
    pub startup_cpu_seconds: f64,
    /// CPU the broker process used meanwhile (it shares the machine with the sink).
    pub broker_cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Minor page faults and context switches of the sink (see [`procs::kernel_counts`]).
    pub page_faults: u64,
    pub context_switches: u64,
    /// The sink's CPU by thread role, read with the kernel counts (so late, not at exit).
    pub threads: procs::ThreadCpu,
    pub samples: Vec<Sample>,
    #[serde(skip)]
    pub ndjson: Vec<u8>,
    /// A Delta table's commits (`INGEST_FORMAT=delta`), the first one included.
    pub table_commits: Option<u64>,
}

fn base_vars(topic: &str, group: &str, brokers: &str, root: &Path) -> Vec<(String, String)> {
    [
        ("INGEST_TOPIC", topic),
        ("INGEST_KAFKA_GROUP_ID", group),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", brokers),
        ("INGEST_STORAGE_URL", root.to_str().unwrap_or_default()),
        ("INGEST_LOG_FORMAT", "text"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Loads `records` over `partitions`, starts the sink with `settings` and times it draining
/// them: from its first consumed record until every record is committed. Once it has consumed
/// everything it gets SIGTERM, so the last batches land by the shutdown flush instead of
/// waiting for their age trigger.
pub fn backlog(
    mode: &str,
    kind: Records,
    records: u64,
    partitions: i32,
    settings: &[(String, String)],
    work: &Path,
) -> anyhow::Result<Backlog> {
    let topic = format!("bench-{mode}");
    let broker = BrokerProcess::start(&topic, partitions)?;
    eprintln!("[{mode}] loading {records} records over {partitions} partitions");
    let produced = broker::preload(&broker.bootstrap, &topic, partitions, records, kind)?;
    let root = work.join(mode);
    std::fs::create_dir_all(&root)?;
    let group = format!("ingest-{topic}");
    let port = procs::free_port()?;
    let mut vars = base_vars(&topic, &group, &broker.bootstrap, &root);
    vars.push(("INGEST_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
    vars.extend(settings.iter().cloned());
    let watch = CommitWatch::new(&broker.bootstrap, &group, &topic, partitions)?;
    let log = work.join(format!("sink-{mode}.log"));

    eprintln!("[{mode}] sink draining the backlog");
    let broker_cpu_before = procs::cpu_seconds(broker.pid())?;
    let launched = Instant::now();
    let mut sink = SinkProcess::start(&vars, &log)?;
    let pid = sink.pid();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let (mut first_consumed, mut terminated) = (None::<Instant>, false);
    let (mut cpu_seconds, mut peak_rss_bytes) = (0.0, 0);
    let mut startup_cpu_seconds = 0.0;
    let (mut page_faults, mut context_switches) = (0, 0);
    let mut threads = procs::ThreadCpu::default();
    let mut last_scrape = Instant::now();
    loop {
        if !terminated {
            sink.check_running(&log)?;
        }
        if launched.elapsed() > HANG_GUARD {
            bail!(
                "[{mode}] not done after {HANG_GUARD:?}; see {}",
                log.display()
            );
        }
        let committed = watch.committed()?;
        if committed >= records as i64 {
            break;
        }
        // While the sink lives its /proc entry is current; keep the last reading.
        if let (Ok(cpu), Ok(hwm)) = (procs::cpu_seconds(pid), procs::status_bytes(pid, "VmHWM")) {
            (cpu_seconds, peak_rss_bytes) = (cpu, hwm);
        }
        // The sink's /metrics: every turn until it consumes (the start of the clock), then every
        // SCRAPE_EVERY, as a render costs the sink CPU (at every turn, 1-2 % of all it spent).
        let scrape_due = first_consumed.is_none() || last_scrape.elapsed() >= SCRAPE_EVERY;
        if !terminated && scrape_due {
            last_scrape = Instant::now();
            let consumed = procs::scrape(port, "ingest_records_consumed_total").unwrap_or(0.0);
            if consumed > 0.0 && first_consumed.is_none() {
                first_consumed = Some(Instant::now());
                startup_cpu_seconds = procs::cpu_seconds(pid).unwrap_or(cpu_seconds);
            }
            if consumed >= records as f64 {
                sink.terminate()?;
                terminated = true;
            }
        }
        // Every thread's status file: read at the samples (not every 20 ms, which would take
        // CPU from the sink), and on every turn after SIGTERM, so the last reading is late.
        let sample_due = first_consumed.is_some_and(|t0| t0.elapsed() >= next_sample);
        if sample_due || terminated {
            if let Ok(counts) = procs::kernel_counts(pid) {
                (page_faults, context_switches) = counts;
            }
            if let Ok(cpu) = procs::thread_cpu(pid) {
                threads = cpu;
            }
        }
        if let Some(t0) = first_consumed {
            if sample_due {
                samples.push(Sample {
                    t_s: t0.elapsed().as_secs_f64(),
                    records: committed,
                    landed_bytes: landed::landed_bytes(&root, &topic),
                    rss_bytes: procs::status_bytes(pid, "VmRSS").unwrap_or(0),
                });
                next_sample += Duration::from_millis(500);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    let broker_cpu_seconds = procs::cpu_seconds(broker.pid())? - broker_cpu_before;
    let t0 = first_consumed.unwrap_or(launched);
    samples.push(Sample {
        t_s: done.duration_since(t0).as_secs_f64(),
        records: records as i64,
        landed_bytes: landed::landed_bytes(&root, &topic),
        rss_bytes: 0,
    });
    if let (Ok(cpu), Ok(hwm)) = (procs::cpu_seconds(pid), procs::status_bytes(pid, "VmHWM")) {
        (cpu_seconds, peak_rss_bytes) = (cpu, hwm);
    }
    sink.stop()
        .with_context(|| format!("see {}", log.display()))?;
    drop(broker);

    let (landed_records, compressed_bytes, ndjson) = landed::read_all(&root, &topic)?;
    if landed_records != records {
        bail!("[{mode}] {landed_records} records landed, {records} were produced");
    }
    let table_commits = landed::table_commits(&root, &topic)?;
    if let Some((commits, adds)) = table_commits {
        let files = landed::data_files(&root, &topic).len() as u64;
        if adds != files {
            bail!("[{mode}] {files} files landed, the table's {commits} commits add {adds}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(Backlog {
        mode: mode.to_string(),
        kind: kind.name(),
        partitions,
        records,
        settings: settings.to_vec(),
        seconds: done.duration_since(t0).as_secs_f64(),
        startup_seconds: t0.duration_since(launched).as_secs_f64(),
        // Parquet lands no NDJSON: the produced values, a line each, are what NDJSON would hold.
        uncompressed_bytes: match ndjson.len() {
            0 => produced + records,
            n => n as u64,
        },
        compressed_bytes,
        cpu_seconds,
        startup_cpu_seconds,
        broker_cpu_seconds,
        peak_rss_bytes,
        page_faults,
        context_switches,
        threads,
        samples,
        ndjson,
        table_commits: table_commits.map(|(commits, _)| commits),
    })
}

/// What the latency run measured: produce timestamp to file visible, per record.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub partitions: i32,
    pub rate_per_s: u64,
    pub measured_records: usize,
    pub flush_max_age_ms: u64,
    pub p50_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

/// Produces at a steady `rate` for `seconds` (after a warm-up until the first file lands) and
/// measures each record's produce-to-visible time.
pub fn latency(
    rate: u64,
    seconds: u64,
    partitions: i32,
    age_ms: u64,
    extra: &[(&str, &str)],
    work: &Path,
) -> anyhow::Result<Latency> {
    let topic = "bench-latency".to_string();
    let broker = BrokerProcess::start(&topic, partitions)?;
    let root = work.join("latency");
    std::fs::create_dir_all(&root)?;
    let group = format!("ingest-{topic}");
    let mut vars = base_vars(&topic, &group, &broker.bootstrap, &root);
    vars.push(("INGEST_HTTP_ADDR".into(), "127.0.0.1:0".into()));
    let age = age_ms.to_string();
    vars.push(("INGEST_FLUSH_MAX_AGE_MS".into(), age));
    vars.push(("INGEST_ENVELOPE".into(), "metadata".into()));
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let log = work.join("sink-latency.log");
    let mut sink = SinkProcess::start(&vars, &log)?;
    let stop = AtomicBool::new(false);
    let brokers = broker.bootstrap.clone();
    eprintln!(
        "[latency] producing {rate} records/s; measuring {seconds} s after the first file lands"
    );

    let watch = CommitWatch::new(&broker.bootstrap, &group, &topic, partitions)?;
    let result = std::thread::scope(|s| -> anyhow::Result<Latency> {
        let producer = s.spawn(|| -> anyhow::Result<u64> {
            let p = broker::producer(&brokers)?;
            let started = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = started + Duration::from_nanos(n * 1_000_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let partition = (n % partitions as u64) as i32;
                broker::send(&p, &topic, partition, n, broker::now_ms(), Records::Orders)?;
                n += 1;
            }
            p.flush(Duration::from_secs(30))?;
            Ok(n)
        });
        let mut scan = Scan::default();
        let started = Instant::now();
        // Until the window (which opens when the first file lands) has passed.
        while scan.window.is_none_or(|(_, to)| broker::now_ms() < to) {
            guard(&mut sink, &log, started)?;
            scan.look(&root, &topic, seconds)?;
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let produced = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer panicked"))??;
        // Until every produced record is committed, hence landed.
        while watch.committed()? < produced as i64 {
            guard(&mut sink, &log, started)?;
            scan.look(&root, &topic, seconds)?;
            std::thread::sleep(Duration::from_millis(10));
        }
        scan.look(&root, &topic, seconds)?;
        let mut l = scan.latencies;
        l.sort_unstable();
        let pct = |q: f64| {
            let i = ((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1));
            l.get(i).copied().unwrap_or(-1)
        };
        Ok(Latency {
            partitions,
            rate_per_s: rate,
            measured_records: l.len(),
            flush_max_age_ms: age_ms,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: l.last().copied().unwrap_or(-1),
        })
    });
    stop.store(true, Ordering::Relaxed);
    sink.stop()?;
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn guard(sink: &mut SinkProcess, log: &Path, started: Instant) -> anyhow::Result<()> {
    sink.check_running(log)?;
    if started.elapsed() > HANG_GUARD {
        bail!(
            "[latency] did not finish within {HANG_GUARD:?}; see {}",
            log.display()
        );
    }
    Ok(())
}

/// Files seen so far and the latencies of the records produced inside the measuring window.
#[derive(Default)]
struct Scan {
    seen: HashSet<std::path::PathBuf>,
    latencies: Vec<i64>,
    /// Produce-time window `[from, to)` in ms, opened when the first file lands.
    window: Option<(i64, i64)>,
}

impl Scan {
    /// Reads the files that appeared since the last look.
    fn look(&mut self, root: &Path, topic: &str, seconds: u64) -> anyhow::Result<()> {
        let new: Vec<_> = landed::data_files(root, topic)
            .into_iter()
            .filter(|p| !self.seen.contains(p))
            .collect();
        // Taken after listing: a file counts as visible no earlier than we could have seen it.
        let now = broker::now_ms();
        for path in new {
            let text = landed::ndjson(&path)?;
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(line)?;
                let ts = v["timestamp"]
                    .as_i64()
                    .context("a landed line without a timestamp")?;
                if self.window.is_some_and(|(from, to)| ts >= from && ts < to) {
                    self.latencies.push(now - ts);
                }
            }
            self.seen.insert(path);
            self.window
                .get_or_insert((now, now + seconds as i64 * 1000));
        }
        Ok(())
    }
}
