"""Bulk SQL on the job table, for SQLite (``sqlite3``) and PostgreSQL (``psycopg``) alike.

Filling goes through one INSERT … SELECT (a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL), never the ORM row by row. The raw claim loop is the physical limit the worker is
compared with: the same pop-order predicate and index, one job claimed and finished per
transaction, nothing else.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

COLUMNS = (
    "uuid, kind, payload, dependency, priority, status, attempts, max_attempts, run_after, "
    "lease_owner, last_error, created_at, updated_at, idempotency_fingerprint"
)


def vendor(conn) -> str:
    return "sqlite" if type(conn).__module__.startswith("sqlite3") else "postgresql"


def now_sqlite() -> str:
    # Django stores aware datetimes on SQLite as naive UTC text.
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


def fill_sql(db_vendor: str, *, mixed_priorities: bool) -> str:
    """One INSERT … SELECT of ``%(n)s`` pending ``noop`` jobs (placeholders in the vendor's style)."""
    if db_vendor == "sqlite":
        prio = "(x % 3) - 1" if mixed_priorities else "0"
        return (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            f"INSERT INTO jobs_job ({COLUMNS}) "
            f"SELECT lower(hex(randomblob(16))), 'noop', '{{}}', 'local', {prio}, 'pending', 0, 5, "
            "?, '', '', ?, ?, '' FROM c"
        )
    prio = "(g %% 3) - 1" if mixed_priorities else "0"
    return (
        f"INSERT INTO jobs_job ({COLUMNS}) "
        f"SELECT gen_random_uuid(), 'noop', '{{}}'::jsonb, 'local', {prio}, 'pending', 0, 5, "
        "now(), '', '', now(), now(), '' FROM generate_series(1, %s) g"
    )


def fill(conn, n: int, *, mixed_priorities: bool = False) -> float:
    """Insert ``n`` pending noop jobs in one transaction; return the seconds it took."""
    started = time.perf_counter()
    if vendor(conn) == "sqlite":
        now = now_sqlite()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(fill_sql("sqlite", mixed_priorities=mixed_priorities), (n, now, now, now))
        conn.execute("COMMIT")
    else:
        with conn.transaction():
            conn.execute(fill_sql("postgresql", mixed_priorities=mixed_priorities), (n,))
    return time.perf_counter() - started


def counts(conn) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM jobs_job GROUP BY status").fetchall()
    if vendor(conn) == "postgresql":
        conn.commit()
    return {status: count for status, count in rows}


def verify_exactly_once(conn, expected: int) -> dict:
    """Every job succeeded, each with exactly one ``claimed`` and one ``succeeded`` event."""
    q = conn.execute
    succeeded = q("SELECT count(*) FROM jobs_job WHERE status = 'succeeded'").fetchone()[0]
    events = dict(
        q("SELECT kind, count(*) FROM jobs_jobevent WHERE kind IN ('claimed', 'succeeded') GROUP BY kind").fetchall()
    )
    doubles = q(
        "SELECT count(*) FROM (SELECT job_id FROM jobs_jobevent WHERE kind = 'succeeded' "
        "GROUP BY job_id HAVING count(*) <> 1) d"
    ).fetchone()[0]
    if vendor(conn) == "postgresql":
        conn.commit()
    ok = succeeded == expected and events.get("succeeded") == expected and events.get("claimed") == expected and not doubles
    return {
        "ok": ok,
        "succeeded": succeeded,
        "succeeded_events": events.get("succeeded", 0),
        "claimed_events": events.get("claimed", 0),
        "jobs_with_duplicate_success": doubles,
    }


def drain_window(conn) -> float:
    """Seconds from the first claim to the last finish, by the database's own timestamps."""
    if vendor(conn) == "sqlite":
        row = conn.execute(
            "SELECT (julianday(max(finished_at)) - julianday(min(started_at))) * 86400.0 "
            "FROM jobs_job WHERE status = 'succeeded'"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM jobs_job WHERE status = 'succeeded'"
        ).fetchone()
        conn.commit()
    return float(row[0])


def start_latencies_ms(conn) -> list[float]:
    """Per job: created_at (submission) → started_at (claim), in milliseconds."""
    if vendor(conn) == "sqlite":
        rows = conn.execute(
            "SELECT (julianday(started_at) - julianday(created_at)) * 86400000.0 FROM jobs_job "
            "WHERE started_at IS NOT NULL"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM jobs_job WHERE started_at IS NOT NULL"
        ).fetchall()
        conn.commit()
    return [float(r[0]) for r in rows]


# SQLite's planner prefers job_status_finished (status, finished_at) plus a sort of every pending
# row over the partial pop-order index, so the raw loop names the index it means to use.
CLAIM_SQLITE = (
    "UPDATE jobs_job SET status = 'running', lease_owner = 'raw', lease_expires_at = ?, "
    "started_at = ?, updated_at = ? WHERE seq = (SELECT seq FROM jobs_job INDEXED BY job_pop_order "
    "WHERE status = 'pending' "
    "AND run_after <= ? ORDER BY priority DESC, seq LIMIT 1) RETURNING seq"
)
FINISH_SQLITE = (
    "UPDATE jobs_job SET status = 'succeeded', attempts = attempts + 1, result = '{}', "
    "finished_at = ?, lease_owner = '', lease_expires_at = NULL, updated_at = ? WHERE seq = ?"
)
EVENT_SQLITE = "INSERT INTO jobs_jobevent (job_id, kind, at, actor, details) VALUES (?, ?, ?, 'raw', '{}')"
CLAIM_PG = (
    "UPDATE jobs_job SET status = 'running', lease_owner = 'raw', "
    "lease_expires_at = now() + interval '60 seconds', started_at = now(), updated_at = now() "
    "WHERE seq = (SELECT seq FROM jobs_job WHERE status = 'pending' AND run_after <= now() "
    "ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING seq"
)
FINISH_PG = (
    "UPDATE jobs_job SET status = 'succeeded', attempts = attempts + 1, result = '{}'::jsonb, "
    "finished_at = now(), lease_owner = '', lease_expires_at = NULL, updated_at = now() WHERE seq = %s"
)
EVENT_PG = "INSERT INTO jobs_jobevent (job_id, kind, at, actor, details) VALUES (%s, %s, now(), 'raw', '{}'::jsonb)"


def raw_loop(conn, *, events: bool = False, limit: int | None = None, deadline: float = 120) -> tuple[int, float]:
    """Claim and finish one job per transaction until none is left; return (jobs, seconds).

    With ``events`` each transaction also writes the two audit rows our worker writes
    (claimed, succeeded), the closest raw equivalent of what the service layer does.
    """
    done = 0
    stop_at = time.monotonic() + deadline
    started = time.perf_counter()
    if vendor(conn) == "sqlite":
        while (limit is None or done < limit) and time.monotonic() < stop_at:
            now = now_sqlite()
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(CLAIM_SQLITE, (now, now, now, now)).fetchone()
            if row is None:
                conn.execute("COMMIT")
                break
            conn.execute(FINISH_SQLITE, (now, now, row[0]))
            if events:
                conn.execute(EVENT_SQLITE, (row[0], "claimed", now))
                conn.execute(EVENT_SQLITE, (row[0], "succeeded", now))
            conn.execute("COMMIT")
            done += 1
    else:
        while (limit is None or done < limit) and time.monotonic() < stop_at:
            with conn.transaction():
                row = conn.execute(CLAIM_PG).fetchone()
                if row is None:
                    break
                conn.execute(FINISH_PG, (row[0],))
                if events:
                    conn.execute(EVENT_PG, (row[0], "claimed"))
                    conn.execute(EVENT_PG, (row[0], "succeeded"))
            done += 1
    return done, time.perf_counter() - started


def reset(conn) -> None:
    """Empty the job tables (the audit trail first: it references jobs)."""
    if vendor(conn) == "sqlite":
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM jobs_jobevent")
        conn.execute("DELETE FROM jobs_job")
        conn.execute("COMMIT")
    else:
        conn.execute("TRUNCATE jobs_jobevent, jobs_job RESTART IDENTITY")
        conn.commit()
