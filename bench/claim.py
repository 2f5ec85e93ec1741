"""(b) ``claim_next`` cost at 1 k, 100 k and 1 M pending jobs, on SQLite and on PostgreSQL, with
and without flow control; and the drain through real workers with a limit in force vs none.

The measuring runs in a child process (``bench.claim_child``) configured for the scratch
database. Reported: µs per ``jobs.queue.job_claim_next`` (median of N claims, each interleaved with
a raw SQL claim as baseline), and the ratio of the largest size to the smallest — it must stay
flat (≈ 1), which is what the partial pop-order index is for.

Flow control's cost, same run: in every round the no-limit claim, the claim with a cap in force
that never binds (100,000 calls in flight) and the claim with a rate limit in force that never
binds (999,999,999/s) run in turn on the same queue; each limited claim is reported against the
no-limit claim (ratio of medians) and for flatness (1 M ÷ 1 k). Then drains of N ``noop`` jobs
through real worker processes (10 slots) with no limit, the cap, the rate limit, in rotating order
(none, cap, rate; cap, rate, none; …), several rounds; the ratio is the median of the rounds'.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from bench import drain, procs, scratch
from bench.report import Row, failed, skipped
from bench.stats import ratio

FULL_SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000, 100_000)
LIMITED = {"cap": "cap of 100,000 in flight", "rate": "rate limit 999,999,999/s"}
# What the drain's workers run under: the same limits, configured (RESILIENT_DEPENDENCIES).
DRAIN_LIMITS = {"none": {}, "cap": {"max_concurrency": 100_000}, "rate": {"rate_limit": "999999999/s"}}
TARGET = 0.9  # issue: flow control costs at most 10 % of drain throughput


def _child(database_url: str, sizes, claims: int, timeout: float) -> dict:
    env = procs.child_env(database_url, LOG_LEVEL="WARNING")
    out = subprocess.run(
        [sys.executable, "-m", "bench.claim_child", "--sizes", ",".join(map(str, sizes)), "--claims", str(claims),
         "--limits"],
        cwd=scratch.ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode:
        raise RuntimeError(f"claim_child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rows(label: str, data: dict) -> list[Row]:
    # Medians, not means: on a shared machine a few descheduled claims swing a mean by 50 %.
    results = data["results"]
    smallest = results[0]
    load = f"load {os.getloadavg()[0]:.1f}"
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
    for variant, what in LIMITED.items():
        key = f"{variant}_us_p50"
        if key not in smallest:
            continue
        for r in results:
            rows.append(Row(
                bench="claim", case=f"{label}, {what}, {r['size']:,} pending",
                value=r[key], unit="µs/claim p50", p50_ms=r[key] / 1000, p99_ms=r[f"{variant}_us_p99"] / 1000,
                baseline=r["us_p50"], baseline_label="µs no-limit claim p50 (interleaved)",
                ratio=ratio(r[key], r["us_p50"]), note=f"mean {r[f'{variant}_us_mean']:,.0f} µs; {load}",
            ))
        flat = largest[key] / smallest[key]
        rows.append(Row(
            bench="claim", case=f"{label}, {what}, {largest['size']:,} / {smallest['size']:,}",
            value=flat, unit="x", baseline=largest["us_p50"] / smallest["us_p50"], baseline_label="x no limit",
            ratio=None, target="≈1 (flat)", status="ok" if flat < 2 else "failed",
        ))
    return rows


def _drains(label: str, conn, n: int, rounds: int, start, timeout: float) -> list[Row]:
    """``rounds`` drains of each of DRAIN_LIMITS in rotating order; one row per limited case. A
    drain that fails is reported and its round left out of that case's ratio."""
    names = list(DRAIN_LIMITS)
    rates: dict[str, list[float | None]] = {name: [] for name in names}
    problems: list[Row] = []
    loads = []
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            row = drain._case(f"{label}, {name}", conn, n, lambda name=name: start(name), timeout)
            if row.status != "ok":
                problems.append(failed("claim", f"{label} drain, {name}, round {i + 1}", row.note))
            rates[name].append(row.value if row.status == "ok" else None)
        loads.append(os.getloadavg()[0])
    measured = [v for v in rates["none"] if v is not None]
    if not measured:
        return problems
    none = statistics.median(measured)
    rows = [Row(bench="claim", case=f"{label} drain, no limit", value=none, unit="jobs/s median",
                note=f"{n:,} noop jobs x {rounds} rounds: {', '.join(f'{v:,.0f}' for v in measured)}; "
                     f"load {min(loads):.1f}–{max(loads):.1f}",
                extra={"jobs_per_s": rates["none"], "load": loads})]
    for name in names[1:]:
        pairs = [v / b for v, b in zip(rates[name], rates["none"], strict=True) if v is not None and b is not None]
        if not pairs:
            continue
        median = statistics.median(pairs)
        rows.append(Row(
            bench="claim", case=f"{label} drain, {LIMITED[name]}",
            value=statistics.median([v for v in rates[name] if v is not None]),
            unit="jobs/s median", baseline=none, baseline_label="jobs/s no limit (same rounds)", ratio=median,
            target=f"≥{TARGET}", status="ok",
            note=f"round ratios {', '.join(f'{r:.3f}' for r in pairs)}; "
                 f"{'within' if median >= TARGET else 'OVER'} 10 %",
            extra={"jobs_per_s": rates[name], "ratios": pairs},
        ))
    return rows + problems


def _limits_env(name: str) -> dict[str, str]:
    return {"RESILIENT_DEPENDENCIES": json.dumps({"local": DRAIN_LIMITS[name]})} if DRAIN_LIMITS[name] else {}


def run(quick: bool, parts: tuple[str, ...] = ("claims", "drains"),
        databases: tuple[str, ...] = ("sqlite", "postgresql")) -> list[Row]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    claims = 200 if quick else 500
    n, rounds = (1_000, 1) if quick else (10_000, 5)
    rows: list[Row] = []
    parts_sqlite = parts if "sqlite" in databases else ()
    if "claims" in parts_sqlite:
        path, _ = scratch.sqlite_copy("claim")
        try:
            rows += _rows("SQLite", _child(path, sizes, claims, timeout=600))
        except Exception as exc:  # noqa: BLE001
            rows.append(failed("claim", "SQLite", str(exc).splitlines()[-1][:200]))
        finally:
            scratch.sqlite_remove(path)  # a 1 M-row file is ~0.5 GB: don't leave it behind
    if "drains" in parts_sqlite:
        path, _ = scratch.sqlite_copy("claim-drain")
        conn = scratch.sqlite_connect(path)
        try:
            rows += _drains("SQLite serve, 10 slots", conn, n, rounds, lambda name: [
                drain._worker(f"claim-drain-{name}", path, serve=True, **_limits_env(name))], timeout=240)
        except Exception as exc:  # noqa: BLE001
            rows.append(failed("claim", "SQLite drain", str(exc).splitlines()[-1][:200]))
        finally:
            conn.close()
            scratch.sqlite_remove(path)
    if "postgresql" not in databases:
        return rows
    problem = scratch.services_problem()
    if problem:
        return rows + [skipped("claim", "PostgreSQL", problem)]
    if "claims" in parts:
        url, _ = scratch.pg_fresh()
        try:
            rows += _rows("PostgreSQL", _child(url, sizes, claims, timeout=600))
        except Exception as exc:  # noqa: BLE001
            rows.append(failed("claim", "PostgreSQL", str(exc).splitlines()[-1][:200]))
        finally:
            scratch.pg_fresh()  # leave no million-row table behind
    if "drains" in parts:
        url, _ = scratch.pg_fresh()
        scratch.redis_flush()
        try:
            with scratch.pg_connect(autocommit=True) as conn:
                rows += _drains("PG+Redis runworker x2, 10 slots", conn, n, rounds, lambda name: [
                    drain._worker(f"claim-drain-pg-{name}-{i}", url, redis_url=scratch.REDIS_URL,
                                  **_limits_env(name))
                    for i in range(2)], timeout=240)
                drain.sql.reset(conn)
        except Exception as exc:  # noqa: BLE001
            rows.append(failed("claim", "PG+Redis drain", str(exc).splitlines()[-1][:200]))
        scratch.redis_flush()
    return rows


if __name__ == "__main__":  # python -m bench.claim [--quick] [claims|drains ...]: one part alone
    import argparse

    from bench import report

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("parts", nargs="*", choices=["claims", "drains"], default=["claims", "drains"])
    args = parser.parse_args()
    try:
        print(report.table(run(args.quick, tuple(args.parts), tuple(args.db or ("sqlite", "postgresql")))))
    finally:
        procs.stop_all()
