"""Plots bench/throughput.csv (written by `ingest-bench run --results bench`) as a PNG.

Usage: python3 bench/plot.py bench/throughput.csv bench/throughput.png
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    runs = defaultdict(list)
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            runs[row["mode"]].append(row)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for mode, rows in runs.items():
        t = [float(r["t_s"]) for r in rows]
        records = [int(r["records"]) for r in rows]
        mean = float(rows[0]["mean_line_bytes"])
        # Uncompressed MB/s landed (committed) in each 0.5 s interval.
        rate = [0.0] + [
            (records[i] - records[i - 1]) * mean / 1e6 / max(t[i] - t[i - 1], 1e-3)
            for i in range(1, len(t))
        ]
        top.step(t, rate, where="post", label=f"{mode}: NDJSON MB/s committed")
        rss = [int(r["rss_bytes"]) / 1e6 for r in rows if int(r["rss_bytes"]) > 0]
        bottom.plot(t[: len(rss)], rss, label=f"{mode}: sink RSS MB")
    top.set_ylabel("MB/s (uncompressed)")
    top.legend()
    top.grid(alpha=0.3)
    bottom.set_ylabel("RSS MB")
    bottom.set_xlabel("seconds since the sink's first consumed record")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.suptitle("ingest: landing a Kafka backlog into local disk (gzip)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
