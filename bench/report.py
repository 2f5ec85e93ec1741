"""Result rows, the printed table and results.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    bench: str
    case: str
    value: float | None = None
    unit: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: str = ""
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    extra: dict = field(default_factory=dict)


# Keys of a result dict whose bool value is a verdict (a promise checked, a target met).
VERDICTS = ("_holds", "meets_target")


def rows_from_dict(bench: str, results: dict, prefix: str = "") -> list[Row]:
    """One row per numeric leaf of a benchmark's nested result dict (case = the key path); a
    verdict (``VERDICTS``) that is False makes its row, and so the run, fail."""
    rows: list[Row] = []
    for key, value in results.items():
        case = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += rows_from_dict(bench, value, prefix=f"{case} / ")
        elif isinstance(value, bool) and key.endswith(VERDICTS):
            # A verdict: the benchmark's own check of what it measured; False fails the run.
            rows.append(Row(bench=bench, case=case, note=str(value), status="ok" if value else "failed"))
        elif isinstance(value, bool) or value is None:
            rows.append(Row(bench=bench, case=case, note=str(value)))
        elif isinstance(value, int | float):
            rows.append(Row(bench=bench, case=case, value=float(value)))
        else:
            rows.append(Row(bench=bench, case=case, note=str(value)[:200]))
    return rows


def skipped(bench: str, case: str, reason: str) -> Row:
    return Row(bench=bench, case=case, status="skipped", note=reason)


def failed(bench: str, case: str, reason: str) -> Row:
    return Row(bench=bench, case=case, status="failed", note=reason)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Row]) -> str:
    header = ["bench", "case", "result", "p50 ms", "p99 ms", "baseline", "ratio", "target", "note"]
    lines = []
    for r in rows:
        if r.status == "skipped":
            lines.append([r.bench, r.case, "SKIPPED", "", "", "", "", r.target, r.note])
            continue
        if r.status == "failed":
            lines.append([r.bench, r.case, "FAILED", "", "", "", "", r.target, r.note])
            continue
        baseline = f"{_num(r.baseline)} {r.baseline_label}".strip() if r.baseline is not None else "-"
        lines.append([
            r.bench, r.case, f"{_num(r.value)} {r.unit}".strip(), _num(r.p50_ms), _num(r.p99_ms),
            baseline, "-" if r.ratio is None else f"{r.ratio:.3f}", r.target, r.note,
        ])
    lines = [[*line[:-1], str(line[-1])[:100]] for line in lines]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]

    def fmt(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in lines]
    return "\n".join(out)


def write_json(path: Path, rows: list[Row], *, quick: bool, names: list[str], seconds: float) -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "benchmarks": names,
        "seconds": round(seconds, 1),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_at_end": load,
            "note": "shared machine: other processes use the CPU; compare ratios, not absolute numbers",
        },
        "rows": [asdict(r) for r in rows],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def markdown(rows: list[dict]) -> str:
    """The rows of a results.json as a Markdown table (for the README)."""
    out = ["| bench | case | result | p50 ms | p99 ms | baseline | ratio | target | note |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        r = {k: v.replace("|", "\\|") if isinstance(v, str) else v for k, v in r.items()}
        if r["status"] != "ok":
            out.append(f"| {r['bench']} | {r['case']} | {r['status'].upper()} | | | | | {r['target']} | {r['note']} |")
            continue
        baseline = f"{_num(r['baseline'])} {r['baseline_label']}" if r["baseline"] is not None else "-"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        out.append(
            f"| {r['bench']} | {r['case']} | {_num(r['value'])} {r['unit']} | {_num(r['p50_ms'])} | "
            f"{_num(r['p99_ms'])} | {baseline} | {ratio} | {r['target']} | {r['note']} |"
        )
    return "\n".join(out)


if __name__ == "__main__":  # python -m bench.report [results.json]: the table as Markdown
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    print(markdown(json.loads(source.read_text())["rows"]))
