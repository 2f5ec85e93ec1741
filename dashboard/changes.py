"""What changed between two dashboard states, and how a client applies it. Pure.

The socket sends one snapshot (``dashboard.snapshot.build``), then only ``diff(previous, next)``
per tick. ``apply(state, changes)`` is the reference reconstruction: applied in order to the
snapshot, the changes give exactly the next states (``static/dashboard/changes.js`` does the
same in the page). A change holds only the parts that changed:

- ``counts``, ``estimated``: the new value, whole.
- ``breakers``, ``queue``, ``running``, ``finished``, ``events`` (lists keyed by ``name`` or
  ``id``): ``{"upsert": [rows], "order": [...]}``, each part only when needed. ``upsert``
  holds the rows that are new or whose content changed (replacing the old row of the same
  key). ``order``, present when the keys are not the old keys in the old order, is the whole
  new list: runs ``[start, count]`` of the old list (``old[start:start + count]``) and, for a
  row that was not in the old list, its index in ``upsert``. A row in neither is gone. So a job
  leaving the head of a hundred-row queue is ``{"order": [[1, 99]]}``. When every upserted row
  has the same keys in the same order, ``upsert`` is packed as ``{"cols": [keys], "rows":
  [[values]]}`` (the same rows, in the same order, without repeating the keys).
- Queue rows travel without what their place in the list says: ``position`` (index + 1),
  ``held`` and ``held_ahead``, and a ``waiting_for`` that only counts the jobs ahead ("next",
  "N jobs ahead"). So a job leaving the head of the queue does not resend the hundred rows
  behind it.
- ``throughput``: ``{"end", "from", "succeeded", "failed"}``: shift the series to the new end,
  then overwrite it from index ``from`` on; or ``{"series": ...}`` whole.
"""

from __future__ import annotations

from typing import Any

LISTS = {"breakers": "name", "queue": "id", "running": "id", "finished": "id", "events": "id"}
WHOLE = ("counts", "estimated")
POSITIONAL = frozenset({"next", "jobs_ahead"})
DERIVED = ("position", "held", "held_ahead")


def _key(row: dict[str, Any], field: str) -> str:
    return str(row[field])


def queue_wire_row(row: dict[str, Any]) -> dict[str, Any]:
    """A queue row without what its place in the list says (see the module docstring)."""
    wire = {k: v for k, v in row.items() if k not in DERIVED}
    waiting = wire.get("waiting_for")
    if waiting is None or waiting.get("reason") in POSITIONAL:
        wire.pop("waiting_for", None)
    return wire


def queue_expand(rows: list[dict[str, Any]]) -> None:
    """Fill in, in place, what each queue row's place says: position, held, held_ahead, and
    the positional ``waiting_for`` (what ``jobs.selectors.job_waiting_for`` says for it)."""
    held_so_far = 0
    for index, row in enumerate(rows):
        position = index + 1
        waiting = row.get("waiting_for")
        if waiting is None or waiting.get("reason") in POSITIONAL:
            waiting = row["waiting_for"] = (
                {"reason": "jobs_ahead", "jobs_ahead": position - 1} if position > 1 else {"reason": "next", "jobs_ahead": 0}
            )
        row["position"] = position
        row["held"] = waiting["reason"] == "breaker_open"
        row["held_ahead"] = held_so_far
        held_so_far += row["held"]


def _order(old_keys: list[str], new_keys: list[str], upserted: dict[str, int]) -> list[Any]:
    """``new_keys`` as runs ``[start, count]`` of ``old_keys`` and indexes into the upsert."""
    index = {key: i for i, key in enumerate(old_keys)}
    order: list[Any] = []
    for key in new_keys:
        i = index.get(key)
        last = order[-1] if order else None
        if i is None:
            order.append(upserted[key])
        elif isinstance(last, list) and last[0] + last[1] == i:
            last[1] += 1
        else:
            order.append([i, 1])
    return order


def _pack(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    cols = list(rows[0]) if rows else []
    if len(rows) < 2 or any(list(row) != cols for row in rows):
        return rows
    return {"cols": cols, "rows": [[row[c] for c in cols] for row in rows]}


def _unpack(upsert: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(upsert, dict):
        return [dict(zip(upsert["cols"], values, strict=True)) for values in upsert["rows"]]
    return upsert


def _list_diff(old: list[dict], new: list[dict], field: str, wire=lambda row: row) -> dict[str, Any]:
    old_keys = [_key(r, field) for r in old]
    old_rows = dict(zip(old_keys, (wire(r) for r in old), strict=True))
    new_keys = [_key(r, field) for r in new]
    new_rows = dict(zip(new_keys, (wire(r) for r in new), strict=True))
    out: dict[str, Any] = {}
    upsert = [k for k in new_keys if old_rows.get(k) != new_rows[k]]
    if upsert:
        out["upsert"] = _pack([new_rows[k] for k in upsert])
    if old_keys != new_keys:
        out["order"] = _order(old_keys, new_keys, {k: i for i, k in enumerate(upsert)})
    return out


def _list_apply(rows: list[dict], change: dict[str, Any], field: str) -> list[dict]:
    upsert = _unpack(change.get("upsert", []))
    by_key = {_key(r, field): r for r in rows}
    for row in upsert:
        by_key[_key(row, field)] = row
    order = change.get("order")
    if order is None:
        return [by_key[_key(r, field)] for r in rows]
    out: list[dict] = []
    for part in order:
        if isinstance(part, list):
            start, count = part
            out += [by_key[_key(r, field)] for r in rows[start:start + count]]
        else:
            out.append(upsert[part])
    return out


def _series_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    if old == new:
        return None
    if old is None or new is None or old["seconds"] != new["seconds"] or not 0 <= new["end"] - old["end"] < new["seconds"]:
        return {"series": new}
    shift, size = new["end"] - old["end"], new["seconds"]
    start = size - shift
    for i in range(size - shift):
        if new["succeeded"][i] != old["succeeded"][i + shift] or new["failed"][i] != old["failed"][i + shift]:
            start = i
            break
    return {"end": new["end"], "from": start, "succeeded": new["succeeded"][start:], "failed": new["failed"][start:]}


def _series_apply(old: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any] | None:
    if "series" in change:
        return change["series"]
    shift, size, start = change["end"] - old["end"], old["seconds"], change["from"]
    series = {"end": change["end"], "seconds": size}
    for name in ("succeeded", "failed"):
        values = (old[name][shift:] + [0] * shift)[:start]
        series[name] = values + change[name]
    return series


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What turns state ``old`` into state ``new`` (empty when they are equal)."""
    out: dict[str, Any] = {}
    for key in WHOLE:
        if old.get(key) != new.get(key):
            out[key] = new.get(key)
    for key, field in LISTS.items():
        change = _list_diff(old[key], new[key], field, queue_wire_row if key == "queue" else lambda row: row)
        if change:
            out[key] = change
    series = _series_diff(old.get("throughput"), new.get("throughput"))
    if series is not None:
        out["throughput"] = series
    return out


def apply(state: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply one change to ``state`` in place (and return it): the reference reconstruction."""
    for key in WHOLE:
        if key in changes:
            state[key] = changes[key]
    for key, field in LISTS.items():
        if key in changes:
            state[key] = _list_apply(state[key], changes[key], field)
            if key == "queue":
                queue_expand(state["queue"])
    if "throughput" in changes:
        state["throughput"] = _series_apply(state.get("throughput"), changes["throughput"])
    return state
