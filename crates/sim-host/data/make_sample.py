#!/usr/bin/env python3
"""Regenerates file-creates-sample.csv from the full trace (shared/data/file-creates.csv).

Deterministic: 1,800 rows spread evenly over the rows of every process except
wermgr.exe, plus 200 spread evenly over wermgr.exe's rows (it makes about half of the
full trace in bursts; the data README suggests down-weighting it). Original order kept.

Usage: make_sample.py FULL.csv > file-creates-sample.csv
"""
import csv
import sys

OTHERS, WERMGR = 1800, 200


def spread(rows, k):
    n = len(rows)
    k = min(k, n)
    return {id(rows[(i * n) // k]) for i in range(k)}


def main(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    wer = [r for r in rows if r["image"].lower().endswith("\\wermgr.exe")]
    other = [r for r in rows if not r["image"].lower().endswith("\\wermgr.exe")]
    keep = spread(other, OTHERS) | spread(wer, WERMGR)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["t_us", "pid", "tid", "image", "path", "source"])
    for r in rows:
        if id(r) in keep:
            out.writerow([r[c] for c in ("t_us", "pid", "tid", "image", "path", "source")])


if __name__ == "__main__":
    main(sys.argv[1])
