"""The ``resilient`` command: argparse commands, each one or a few API calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from resilient_cli import load, render
from resilient_cli.api import DEFAULT_URL, ApiError, Client

# Exit codes: 0 done, 1 the server refused or could not be reached, 2 bad usage (argparse's own).
REFUSED = 1

DESCRIPTION = """\
Talk to a Resilient job service over its REST API.

The server and your API token come from RESILIENT_URL (default http://127.0.0.1:8000) and
RESILIENT_TOKEN, or --url and --token. `make run` prints the operator's token; any user can get one
with `manage.py drf_create_token NAME`.
"""

EPILOG = """\
examples:
  resilient submit noop                                 one job of kind noop
  resilient submit http --payload '{"url": "http://127.0.0.1:9000/"}' --priority 5 --delay 60
  resilient submit --file jobs.jsonl                    load a JSON Lines file in batches of 500
  cat jobs.jsonl | resilient submit --file -            the same from standard input
  resilient list --status pending --ordering pop        the queue as the workers see it
  resilient show 6f1c2a9e-...                           one job and its timeline
  resilient force-open default --reason "db upgrade" --ttl 1800
  resilient --json list | jq '.[].id'                   machine-readable output

A load is resumable: each line gets an idempotency key from its line number and content, so
running the same command again after an interruption stores only the lines not yet stored.
Errors print the server's message on stderr and exit 1; bad usage exits 2.
"""


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resilient", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("RESILIENT_URL", DEFAULT_URL),
                        help="the server (env RESILIENT_URL; default %(default)s)")
    parser.add_argument("--token", default=os.environ.get("RESILIENT_TOKEN"),
                        help="your API token (env RESILIENT_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the server's JSON answers (for scripts)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submit = commands.add_parser(
        "submit", help="submit one job from flags, or many from a JSON Lines file",
        description="Submit one job (KIND and flags) or load many from --file (one job object per line, "
                    "the fields of POST /api/jobs/), sent in batches with a progress bar on stderr.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='a line of a file: {"kind": "http", "payload": {"path": "/orders/1"}, "priority": 5, "delay_seconds": 30}',
    )
    submit.add_argument("kind", nargs="?", help="the job kind (noop, simulate, http, or your own)")
    submit.add_argument("--payload", type=_json_arg, help="the handler's arguments, a JSON object")
    submit.add_argument("--priority", type=int, help="-100..100, higher runs first (default 0)")
    submit.add_argument("--emergency", action="store_true", help="priority 10")
    submit.add_argument("--dependency", help="the breaker its calls go through (default: the kind's)")
    submit.add_argument("--max-attempts", type=int, help="attempts before it fails (default 5)")
    submit.add_argument("--key", dest="idempotency_key", help="idempotency key: resubmitting it returns the same job")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--run-after", help="not before this time, ISO 8601 with a time zone (2030-01-01T12:00:00Z)")
    when.add_argument("--delay", type=float, dest="delay_seconds", help="not before this many seconds from now")
    submit.add_argument("--file", help="a JSON Lines file of jobs, or - for standard input")
    submit.add_argument("--batch-size", type=_positive_int, default=500,
                        help="jobs per request with --file (default %(default)s; the server allows up to RESILIENT_MAX_BATCH)")
    submit.add_argument("--key-prefix", default="load",
                        help="namespace of the keys given to lines without one (default %(default)s): "
                             "use another to load the same lines again as new jobs")
    submit.add_argument("--no-keys", action="store_true", help="give lines no idempotency keys (not resumable)")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    submit.set_defaults(run=cmd_submit)

    listing = commands.add_parser("list", help="list jobs you may see, newest first")
    listing.add_argument("--status", choices=["pending", "running", "succeeded", "failed", "cancelled"])
    listing.add_argument("--kind")
    listing.add_argument("--dependency")
    listing.add_argument("--ordering", choices=["newest", "oldest", "pop"], help="pop: pending jobs in run order")
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most this many (default %(default)s)")
    listing.set_defaults(run=cmd_list)

    show = commands.add_parser("show", help="one job: its fields, why it waits, its timeline")
    show.add_argument("id", help="the job's id")
    show.set_defaults(run=cmd_show)

    for name, text in (("cancel", "cancel a pending or failed job"), ("retry", "send a failed or cancelled job back to the queue")):
        action = commands.add_parser(name, help=text)
        action.add_argument("id", help="the job's id")
        action.set_defaults(run=cmd_job_action, action=name)

    listing_breakers = commands.add_parser("breakers", help="every breaker's state, or one with its history")
    listing_breakers.add_argument("name", nargs="?", help="one breaker: its detail")
    listing_breakers.set_defaults(run=cmd_breakers)

    for name, text in (("force-open", "reject every call to a dependency (planned maintenance)"),
                       ("force-closed", "admit every call to a dependency (a known false alarm)"),
                       ("release", "back to automatic")):
        override = commands.add_parser(name, help=text)
        override.add_argument("name", help="the dependency's breaker")
        override.add_argument("--reason", help="why, for the audit trail")
        if name != "release":
            override.add_argument("--ttl", type=float, dest="ttl_seconds", help="lift it by itself after this many seconds")
        override.set_defaults(run=cmd_override, action=name)
    return parser


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.kind:
            args.parser.error("give KIND or --file, not both")
        return _submit_file(client, args)
    if not args.kind:
        args.parser.error("give a job KIND, or --file FILE (see resilient submit --help)")
    body = {name: getattr(args, name) for name in (
        "kind", "payload", "priority", "dependency", "max_attempts", "idempotency_key", "run_after", "delay_seconds")}
    body = {name: value for name, value in body.items() if value is not None}
    if args.emergency:
        body["emergency"] = True
    job = client.post("/api/jobs/", body)
    created = client.last_status == 201  # 200: an earlier job with this idempotency key
    _print(args, job, render.job_line(job, created=created))
    return 0


def _submit_file(client: Client, args: argparse.Namespace) -> int:
    key_prefix = None if args.no_keys else args.key_prefix
    stream = load.progress_stream(args.quiet)
    if args.file == "-":
        progress = load.Progress(total=None, stream=stream)
        load.load(client, sys.stdin, batch_size=args.batch_size, key_prefix=key_prefix, progress=progress)
    else:
        try:
            total = load.count_lines(args.file)
            with open(args.file, encoding="utf-8") as handle:
                progress = load.Progress(total=total, stream=stream)
                load.load(client, handle, batch_size=args.batch_size, key_prefix=key_prefix, progress=progress)
        except OSError as error:
            raise load.LoadError(f"cannot read {args.file}: {error.strerror}") from None
    summary = progress.summary()
    _print(args, summary, f"{summary['sent']:,} jobs sent: {summary['created']:,} new, "
                          f"{summary['existing']:,} already stored, {summary['jobs_per_second']:,} jobs/s")
    return 0


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    rows: list[dict] = []
    page = client.get("/api/jobs/", status=args.status, kind=args.kind, dependency=args.dependency, ordering=args.ordering)
    while True:
        rows += page["results"]
        if len(rows) >= args.limit or not page.get("next"):
            break
        page = client.get(page["next"])
    rows = rows[: args.limit]
    _print(args, rows, render.jobs(rows) + (f"\n({len(rows)} of {page['count']})" if page["count"] > len(rows) else ""))
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    job = client.get(f"/api/jobs/{args.id}/")
    _print(args, job, render.job_detail(job))
    return 0


def cmd_job_action(client: Client, args: argparse.Namespace) -> int:
    job = client.post(f"/api/jobs/{args.id}/{args.action}/")
    _print(args, job, render.job_line(job))
    return 0


def cmd_breakers(client: Client, args: argparse.Namespace) -> int:
    if args.name:
        row = client.get(f"/api/breakers/{args.name}/")
        events = "\n".join(f"  {e['at']}  {e['kind']:<14} {e['from_state']} -> {e['to_state']}  {e['actor']}  {e['reason']}"
                           for e in row.get("events", []))
        _print(args, row, render.breakers([row]) + ("\n\nhistory:\n" + events if events else ""))
        return 0
    rows: list[dict] = []
    page = client.get("/api/breakers/")
    while True:
        rows += page["results"]
        if not page.get("next"):
            break
        page = client.get(page["next"])
    _print(args, rows, render.breakers(rows))
    return 0


def cmd_override(client: Client, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    if getattr(args, "ttl_seconds", None) is not None:
        body["ttl_seconds"] = args.ttl_seconds
    row = client.post(f"/api/breakers/{args.name}/{args.action}/", body)
    _print(args, row, render.breaker_line(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.parser = parser
    client = Client(url=args.url, token=args.token, timeout=args.timeout)
    try:
        return args.run(client, args)
    except (ApiError, load.LoadError) as error:
        print(f"resilient {args.command}: {error}", file=sys.stderr)
        if isinstance(error, ApiError) and error.status == 401 and not args.token:
            print("  (set RESILIENT_TOKEN or pass --token)", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        print(f"\nresilient {args.command}: interrupted", file=sys.stderr)
        return 130
