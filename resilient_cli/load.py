"""Loading jobs from JSON Lines: batches of ``POST /api/jobs/bulk/``, a progress bar, resumable.

Every line is one job object (the fields of ``POST /api/jobs/``). A line without an
``idempotency_key`` gets one from its line number and content (``<prefix>:<n>:<hash>``), so
running the same load again after an interruption stores only what is missing: lines already
stored answer ``"created": false``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from resilient_cli.api import ApiError, Client

BULK = "/api/jobs/bulk/"


class LoadError(Exception):
    """A line that is not a job object, or a batch the server refused (names the line)."""


@dataclass
class Progress:
    """Counts of a load, drawn on ``stream`` as one self-overwriting line."""

    total: int | None
    stream: IO[str] | None
    sent: int = 0
    created: int = 0
    existing: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.sent / max(time.monotonic() - self.started, 1e-9)

    def draw(self, *, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.total:
            done = self.sent / self.total
            bar = "#" * int(done * 30)
            head = f"[{bar:<30}] {self.sent:,}/{self.total:,} jobs {done:4.0%}"
        else:
            head = f"{self.sent:,} jobs"
        self.stream.write(f"\r{head}  {self.rate():,.0f} jobs/s  ({self.created:,} new, {self.existing:,} already stored)")
        if final:
            self.stream.write("\n")
        self.stream.flush()

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "created": self.created, "existing": self.existing,
                "seconds": round(time.monotonic() - self.started, 3), "jobs_per_second": round(self.rate(), 1)}


def job_lines(lines: Iterable[str], *, key_prefix: str | None) -> Iterator[tuple[int, dict]]:
    """(line number, job) for each non-blank line; ``LoadError`` for one that is not a JSON object."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            job = json.loads(text)
        except ValueError as error:
            raise LoadError(f"line {number}: not JSON: {error}") from None
        if not isinstance(job, dict):
            raise LoadError(f"line {number}: must be a JSON object (one job)")
        if key_prefix is not None and "idempotency_key" not in job:
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            job["idempotency_key"] = f"{key_prefix}:{number}:{digest}"
        yield number, job


def _batches(jobs: Iterator[tuple[int, dict]], size: int) -> Iterator[list[tuple[int, dict]]]:
    batch: list[tuple[int, dict]] = []
    for item in jobs:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(client: Client, lines: Iterable[str], *, batch_size: int, key_prefix: str | None,
         progress: Progress) -> Progress:
    """Send every job of ``lines`` in batches of ``batch_size``; stop at the first refused batch."""
    for batch in _batches(job_lines(lines, key_prefix=key_prefix), batch_size):
        try:
            answer = client.post(BULK, {"jobs": [job for _, job in batch]})
        except ApiError as error:
            progress.draw(final=True)
            raise LoadError(_locate(error, batch, progress)) from None
        for job in answer["jobs"]:
            if job.get("created"):
                progress.created += 1
            else:
                progress.existing += 1
        progress.sent += len(batch)
        progress.draw()
    progress.draw(final=True)
    return progress


def _locate(error: ApiError, batch: list[tuple[int, dict]], progress: Progress) -> str:
    """The refusal in terms of the file's lines, and how to go on."""
    where = f"the batch of lines {batch[0][0]}-{batch[-1][0]}"
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("jobs"), dict):
        parts = []
        for index, errors in body["jobs"].items():
            line = batch[int(index)][0]
            parts += [f"line {line}: {name}: {'; '.join(map(str, msgs))}" for name, msgs in errors.items()]
        text = "; ".join(parts)
    else:
        text = str(error)
    return (f"{where} was refused, nothing of it stored: {text}. {progress.sent:,} jobs before it were stored; "
            "fix the file and run the same command again to send the rest")


def count_lines(path: str) -> int:
    """Non-blank lines of ``path`` (the progress bar's total)."""
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def progress_stream(quiet: bool) -> IO[str] | None:
    return None if quiet else sys.stderr
