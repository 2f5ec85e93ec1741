"""``python -m bench [NAME...] [--quick]``: run benchmarks, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from bench import procs, report

# name -> module with ``run(quick: bool)`` returning ``list[report.Row]`` (or a nested dict of
# numbers, flattened into one row per leaf); in the order they run.
BENCHMARKS = {
    "api": "bench.api",
    "submit": "bench.submit",
    "claim": "bench.claim",
    "drain": "bench.drain",
    "competitors": "bench.competitors",
    "wakeup": "bench.wakeup",
    "breakers": "bench.breakers",
    "flow": "bench.flow",
    "dashboard": "bench.dashboard",
    "scale": "bench.scale",
    "dashboard_stream": "bench.dashboard_stream",
}
RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run in about a minute)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    # Our children run in their own sessions: a Ctrl-C or SIGTERM to the harness must stop them.
    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    rows: list[report.Row] = []
    try:
        for name in names:
            print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
            t0 = time.monotonic()
            try:
                module = importlib.import_module(BENCHMARKS[name])
                new = module.run(quick=args.quick)
                if isinstance(new, dict):
                    new = report.rows_from_dict(name, new)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
                traceback.print_exc()
                new = [report.failed(name, "-", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])]
            finally:
                procs.stop_all()
            for row in new:
                print("   ", report.table([row]).splitlines()[-1], flush=True)
            rows += new
            print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping our processes", file=sys.stderr)
        procs.stop_all()
        return 130
    seconds = time.monotonic() - started
    print()
    print(report.table(rows))
    print(f"\n{len(rows)} rows in {seconds:.0f} s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(shared machine: read the ratios).")
    report.write_json(args.output, rows, quick=args.quick, names=names, seconds=seconds)
    print(f"wrote {args.output}")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
