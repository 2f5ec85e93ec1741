"""(b) ``claim_next`` cost at 1 k, 100 k and 1 M pending jobs, on SQLite and on PostgreSQL.

The measuring runs in a child process (``bench.claim_child``) configured for the scratch
database. Reported: µs per ``jobs.queue.job_claim_next`` (mean of N claims, each interleaved with
a raw SQL claim as baseline), and the ratio of the largest size to the smallest — it must stay
flat (≈ 1), which is what the partial pop-order index is for.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench import procs, scratch
from bench.report import Row, failed, skipped
from bench.stats import ratio

FULL_SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000, 100_000)


def _child(database_url: str, sizes, claims: int, timeout: float) -> dict:
    env = procs.child_env(database_url, LOG_LEVEL="WARNING")
    out = subprocess.run(
        [sys.executable, "-m", "bench.claim_child", "--sizes", ",".join(map(str, sizes)), "--claims", str(claims)],
        cwd=scratch.ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode:
        raise RuntimeError(f"claim_child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rows(label: str, data: dict) -> list[Row]:
    # Medians, not means: on a shared machine a few descheduled claims swing a mean by 50 %.
    results = data["results"]
    smallest = results[0]
    rows = []
    for r in results:
        rows.append(Row(
            bench="claim", case=f"{label}, {r['size']:,} pending",
            value=r["us_p50"], unit="µs/claim p50", p50_ms=r["us_p50"] / 1000, p99_ms=r["us_p99"] / 1000,
            baseline=r["raw_us_p50"], baseline_label="µs raw SQL claim p50",
            ratio=ratio(r["us_p50"], r["raw_us_p50"]),
            note=f"vs {smallest['size']:,}: x{r['us_p50'] / smallest['us_p50']:.2f}; mean {r['us_mean']:,.0f} µs; "
                 f"fill {r['fill_seconds']} s",
            extra=r,
        ))
    largest = results[-1]
    flat = largest["us_p50"] / smallest["us_p50"]
    rows.append(Row(
        bench="claim", case=f"{label}, {largest['size']:,} / {smallest['size']:,}",
        value=flat, unit="x", baseline=largest["raw_us_p50"] / smallest["raw_us_p50"],
        baseline_label="x raw", ratio=None, target="≈1 (flat)",
        status="ok" if flat < 2 else "failed",
        note="plan: " + largest["plan"][:160],
    ))
    return rows


def run(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    claims = 200 if quick else 500
    rows: list[Row] = []
    path, _ = scratch.sqlite_copy("claim")
    try:
        rows += _rows("SQLite", _child(path, sizes, claims, timeout=400))
    except Exception as exc:  # noqa: BLE001
        rows.append(failed("claim", "SQLite", str(exc).splitlines()[-1][:200]))
    finally:
        scratch.sqlite_remove(path)  # a 1 M-row file is ~0.5 GB: don't leave it behind
    problem = scratch.postgres_problem()
    if problem:
        return rows + [skipped("claim", "PostgreSQL", problem)]
    url, _ = scratch.pg_fresh()
    try:
        rows += _rows("PostgreSQL", _child(url, sizes, claims, timeout=400))
    except Exception as exc:  # noqa: BLE001
        rows.append(failed("claim", "PostgreSQL", str(exc).splitlines()[-1][:200]))
    finally:
        scratch.pg_fresh()  # leave no million-row table behind
    return rows
