//! The benchmark's smoke mode (what CI runs): it completes, lands every record, and its
//! machine-readable line parses with the fields the table is made of. No timing is asserted.

use std::process::Command;

/// Runs `ingest-bench run <args>`; its stdout and the parsed `BENCH_JSON` line.
fn bench(args: &[&str]) -> (String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ingest-bench"))
        .arg("run")
        .args(args)
        .output()
        .expect("run ingest-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ingest-bench run {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .expect("a BENCH_JSON line");
    let report = serde_json::from_str(json).expect("valid JSON");
    (stdout, report)
}

#[test]
fn smoke_benchmark_completes_and_reports_parseable_results() {
    let (stdout, report) = bench(&["--smoke"]);
    let run = &report["runs"][0];
    assert_eq!(run["mode"], "throughput");
    assert_eq!(run["records"], 3000);
    for field in [
        "records_per_s",
        "mb_per_s",
        "cpu_seconds_per_gb",
        "peak_rss_mb",
        "compression_ratio",
        "of_ceiling",
        "overhead_factor",
        "workers_factor",
        "records_per_cpu_second",
        "page_faults_per_m_records",
    ] {
        assert!(
            run[field].as_f64().is_some_and(|x| x > 0.0),
            "{field} in {run}"
        );
    }
    // The CPU by thread role: shares of the process's CPU, so together at most all of it.
    let split: Vec<f64> = run["cpu_split"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    assert_eq!(split.len(), 3, "loop, librdkafka, workers: {run}");
    let total: f64 = split.iter().sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-9, "{split:?}");
    let clicks = &report["runs"][1];
    assert_eq!(
        (clicks["mode"].as_str(), clicks["kind"].as_str()),
        (Some("clicks"), Some("clicks 150-200 B")),
        "the small-record run, {clicks}"
    );
    assert!(clicks["overhead_factor"].as_f64().is_some_and(|x| x > 0.0));
    // The factor over the slowest and the fastest timing of gzip alone hold the median's.
    for r in [run, clicks] {
        let f = r["overhead_factor"].as_f64().unwrap();
        let range: Vec<f64> = r["overhead_factor_range"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        assert!(
            range.len() == 2 && range[0] <= f && f <= range[1],
            "{f} outside {range:?}"
        );
    }
    assert_eq!(
        report["ceilings"].as_array().map(Vec::len),
        Some(2),
        "one ceiling per kind"
    );
    for field in ["ceiling_one_core_mb_s", "ceiling_all_cores_mb_s"] {
        assert!(report[field].as_f64().is_some_and(|x| x > 0.0), "{field}");
    }
    assert!(stdout.contains("| throughput |"), "the table is printed");
}

#[test]
fn repeated_runs_of_one_kind_report_the_median_and_range_of_their_factors() {
    let (stdout, report) = bench(&["--smoke", "--only", "clicks", "--repeat", "2"]);
    let modes: Vec<&str> = report["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["mode"].as_str())
        .collect();
    assert_eq!(modes, ["clicks", "clicks #2"], "only the clicks, twice");
    let repeated = &report["repeated"][0];
    let factors: Vec<f64> = repeated["factors"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let runs: Vec<f64> = report["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["overhead_factor"].as_f64())
        .collect();
    assert_eq!(factors, runs, "one factor per run, in order: {repeated}");
    let (median, lo, hi) = (
        repeated["median"].as_f64().unwrap(),
        repeated["range"][0].as_f64().unwrap(),
        repeated["range"][1].as_f64().unwrap(),
    );
    let (min, max) = (runs[0].min(runs[1]), runs[0].max(runs[1]));
    assert_eq!((lo, hi), (min, max), "the range is the runs' {repeated}");
    assert!(
        factors.contains(&median),
        "the median is one of the runs: {repeated}"
    );
    assert!(
        stdout.contains("over 2 runs"),
        "the summary line is printed"
    );
}

#[test]
fn the_avro_run_decodes_every_click_through_its_registry() {
    let (_, report) = bench(&["--smoke", "--only", "avro"]);
    let run = &report["runs"][0];
    assert_eq!(
        (
            run["mode"].as_str(),
            run["kind"].as_str(),
            run["records"].as_u64()
        ),
        (Some("avro"), Some("clicks as Avro"), Some(3000)),
        "{run}"
    );
    // Every record landed (the run fails otherwise) as the clicks' NDJSON, whose bytes the
    // CPU per GB is over.
    for field in [
        "cpu_seconds_per_gb",
        "peak_rss_mb",
        "records_per_cpu_second",
    ] {
        assert!(
            run[field].as_f64().is_some_and(|x| x > 0.0),
            "{field} in {run}"
        );
    }
}
