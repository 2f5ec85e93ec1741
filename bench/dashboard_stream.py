"""What one dashboard costs on the wire under load: ``python -m bench.dashboard_stream [--quick]``.

A real ``manage.py serve`` (Daphne + worker, SQLite) while jobs are submitted over the API at a
fixed rate and run by its worker (half ``noop``, half ``simulate`` of 0.2 s with its 5 % failure
rate, so the queue, the running list, the finished list and the feed all move). ``CLIENTS``
plain websocket clients (the ``websockets`` library, no browser) count every message and every
byte they receive during the load; per client, messages/s and KB/s. After the load each client's
state (the snapshot, with every change applied) is compared with ``GET /api/queue/``.

The same load runs twice in one run: against a baseline source tree (``git archive`` of
``BENCH_STREAM_BASELINE``, by default the last commit whose socket sent whole snapshots) and
against this tree; the ratios are this tree over the baseline. Only 127.0.0.1 is contacted; only
processes started here are stopped, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from bench.dashboard import ROOT, Server, Watcher

# The last commit whose dashboard socket sent the whole state in every message.
BASELINE = os.environ.get("BENCH_STREAM_BASELINE", "2442875")
CLIENTS = 2
RATE = 40  # jobs submitted per second
TARGET_MESSAGES = 10
TARGET_KB = 40


def _job(i: int) -> dict:
    if i % 2:
        return {"kind": "noop", "priority": i % 7}
    return {"kind": "simulate", "priority": i % 5, "payload": {"complexity": 2}}


def _submit_paced(server: Server, rate: float, seconds: float, stop: threading.Event, sent: list[int]) -> None:
    """Submit ``rate`` jobs a second for ``seconds`` from one thread (each call is ~ms on 127.0.0.1)."""
    import requests

    api = requests.Session()
    api.headers["Authorization"] = f"Token {server.token}"
    started = time.perf_counter()
    i = 0
    while not stop.is_set() and time.perf_counter() - started < seconds:
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        api.post(server.base + "/api/jobs/", json=_job(i))
        i += 1
    sent.append(i)


async def _watch(server: Server, client: Watcher, done: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/dashboard/", origin=server.base,
                                  additional_headers={"Cookie": server.session_cookie()}, max_size=2**24) as ws:
        while not done.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            reply = client.receive(text)
            if reply is not None:
                await ws.send(json.dumps(reply))


def _matches(state: dict | None, truth: dict) -> bool:
    if state is None:
        return False
    return state["counts"] == truth["by_status"] and [r["id"] for r in state["queue"][: len(truth["next"])]] == [
        j["id"] for j in truth["next"]]


async def _measure(server: Server, *, seconds: float, rate: float, clients: int) -> dict:
    import requests

    watchers = [Watcher() for _ in range(clients)]
    done = asyncio.Event()
    tasks = [asyncio.create_task(_watch(server, c, done)) for c in watchers]
    await asyncio.sleep(1.5)  # connected, first snapshot received (not counted)
    stop = threading.Event()
    sent: list[int] = []
    loop = asyncio.get_running_loop()
    for c in watchers:
        c.counting = True
    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop.run_in_executor(None, _submit_paced, server, rate / 4, seconds, stop, sent)
                               for _ in range(4)))
    finally:
        stop.set()
    elapsed = time.perf_counter() - started
    for c in watchers:
        c.counting = False
    api = requests.Session()
    api.headers["Authorization"] = f"Token {server.token}"
    # Settle: the worker finishes what is queued; then every client must show exactly the API's queue.
    deadline = time.monotonic() + 60
    matches = False
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        truth = (await loop.run_in_executor(None, api.get, server.base + "/api/queue/")).json()
        if truth["by_status"].get("pending", 0) or truth["by_status"].get("running", 0):
            continue
        await asyncio.sleep(2.5)  # one idle refresh at least
        truth = (await loop.run_in_executor(None, api.get, server.base + "/api/queue/")).json()
        matches = all(_matches(c.state, truth) for c in watchers)
        if matches:
            break
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    messages = sum(c.messages for c in watchers) / clients
    kbytes = sum(c.bytes for c in watchers) / clients / 1000
    return {
        "seconds": round(elapsed, 1),
        "jobs_submitted": sum(sent),
        "jobs_per_second": round(sum(sent) / elapsed, 1),
        "clients": clients,
        "messages_per_second_per_client": round(messages / elapsed, 2),
        "kb_per_second_per_client": round(kbytes / elapsed, 2),
        "kb_per_message": round(kbytes / messages, 2) if messages else None,
        "gaps": sum(c.gaps for c in watchers),
        "final_matches_api": matches,
    }


def _baseline_tree(into: Path) -> Path:
    """The baseline commit's files (``git archive``), to be served by the same interpreter."""
    archive = into / "baseline.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), BASELINE], check=True, timeout=120)
    tree = into / "baseline"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def _one(root: Path, *, seconds: float, rate: float, clients: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as var, Server(var, root=root) as server:
        return asyncio.run(_measure(server, seconds=seconds, rate=rate, clients=clients))


def run(quick: bool) -> dict:
    """Baseline and this tree under the same load, one after the other."""
    seconds = 15 if quick else 40
    result: dict = {"rate": RATE, "baseline_commit": BASELINE}
    with tempfile.TemporaryDirectory(prefix="bench-stream-tree-") as scratch:
        try:
            tree = _baseline_tree(Path(scratch))
        except (subprocess.CalledProcessError, OSError) as exc:
            result["baseline"] = {"skipped": f"cannot export {BASELINE}: {exc}"}
        else:
            result["baseline"] = _one(tree, seconds=seconds, rate=RATE, clients=CLIENTS)
    result["current"] = now = _one(ROOT, seconds=seconds, rate=RATE, clients=CLIENTS)
    base = result["baseline"]
    if "messages_per_second_per_client" in base:
        result["ratio_messages"] = round(now["messages_per_second_per_client"] / base["messages_per_second_per_client"], 3)
        result["ratio_bytes"] = round(now["kb_per_second_per_client"] / base["kb_per_second_per_client"], 3)
    result["targets"] = {"messages_per_second": TARGET_MESSAGES, "kb_per_second": TARGET_KB}
    result["within_targets"] = (now["messages_per_second_per_client"] <= TARGET_MESSAGES
                                and now["kb_per_second_per_client"] <= TARGET_KB)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_stream", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--current-only", action="store_true", help="skip the baseline tree")
    args = parser.parse_args(argv)
    if args.current_only:
        result = _one(ROOT, seconds=15 if args.quick else 40, rate=RATE, clients=CLIENTS)
    else:
        result = run(args.quick)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
