"""The procrastinate side of bench/competitors.py; runs only with the competitors venv's python.

``python procrastinate_app.py defer N`` defers N ``noop`` jobs in one ``batch_defer``;
``python -m procrastinate --app procrastinate_app.app worker ...`` runs them. Timing comes from
procrastinate's own ``procrastinate_events`` rows (``started``/``succeeded``), so the task does
nothing but return.
"""

from __future__ import annotations

import os
import sys

import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PROCRASTINATE_DSN"]))


@app.task(name="noop")
async def noop() -> dict:
    """Return {} at once: an async task, like our ``noop`` handler, so no thread hop is added."""
    return {}


def defer(n: int) -> None:
    with app.open():
        ids = noop.batch_defer(*({} for _ in range(n)))
    if len(ids) != n:
        raise SystemExit(f"deferred {len(ids)} of {n} jobs")


if __name__ == "__main__":
    if sys.argv[1:2] != ["defer"]:
        sys.exit("usage: procrastinate_app.py defer N")
    defer(int(sys.argv[2]))
