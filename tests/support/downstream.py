"""A real HTTP downstream on 127.0.0.1 that a test tells to answer, fail, hang or heal.

In-process::

    with Downstream() as ds:
        ds.url("/x")                        # http://127.0.0.1:PORT/x
        ds.set("/x", status=500)            # how one path answers from now on
        ds.fail(503, retry_after=5)         # every other path answers 503 (with Retry-After)
        ds.hang(2.0)                        # ... waits 2 s before answering
        ds.heal(delay=0.5)                  # ... answers 200 again (optionally slow)
        ds.set(delay=0.2, capacity=5)       # ... serves 5 calls at once, 503 beyond
        ds.hits("/x"), ds.headers("/x"), ds.calls, ds.max_concurrent

Out of process (or from another language): ``python -m tests.support.downstream --port 0`` prints
``STUB http://127.0.0.1:PORT`` and serves the same control API:
``POST /_control {"status": 503, "delay": 0, "retry_after": null}`` (add ``"path": "/x"`` for one
path), ``GET /_calls``, ``POST /_reset``. Any other path is "the downstream".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTROL_PATHS = frozenset({"/_control", "/_calls", "/_reset"})


@dataclass(frozen=True)
class Behaviour:
    """How a path answers: status, body, extra headers, a delay before answering."""

    status: int = 200
    body: str = '{"ok": true}'
    delay: float = 0.0
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    capacity: int | None = None  # serve this many calls at once; answer 503 at once beyond

    def response_headers(self) -> dict[str, str]:
        """The headers to send besides Content-Type and Content-Length."""
        extra = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        return {**extra, **self.headers}


@dataclass
class Call:
    """One request the downstream received (``path`` without its query string)."""

    method: str
    path: str
    query: str
    at: float  # wall clock, comparable with finished_at
    monotonic: float  # for gaps between calls, immune to clock steps
    body: str
    headers: dict[str, str]
    status: int = 0
    finished_at: float | None = None
    concurrent: int = 0  # calls in flight when it arrived, itself included


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point of a slow answer

    def _control(self, path: str, body: str) -> None:
        downstream = self.server.downstream
        if path == "/_calls":
            calls = [dataclasses.asdict(c) for c in downstream.calls]
            payload = {
                "count": len(calls),
                "max_concurrent": downstream.max_concurrent,
                "calls": calls,
            }
            self._send(200, json.dumps(payload))
        elif path == "/_reset":
            downstream.reset()
            self._send(200, "{}")
        else:
            options = json.loads(body or "{}")
            behaviour = downstream.set(options.pop("path", None), **options)
            self._send(200, json.dumps(dataclasses.asdict(behaviour)))

    def _serve(self) -> None:
        body = self._body()
        path, _, query = self.path.partition("?")
        downstream = self.server.downstream
        if path in CONTROL_PATHS:
            return self._control(path, body)
        call = Call(
            self.command,
            path,
            query,
            time.time(),
            time.monotonic(),
            body,
            dict(self.headers.items()),
        )
        behaviour = downstream._arrived(call)
        try:
            if behaviour.capacity is not None and call.concurrent > behaviour.capacity:
                call.status = 503
                self._send(503, '{"error": "over capacity"}')
                return None
            if behaviour.delay:
                downstream._stopping.wait(behaviour.delay)
            call.status = behaviour.status
            self._send(behaviour.status, behaviour.body, behaviour.response_headers())
        finally:
            downstream._finished(call)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], downstream: Downstream) -> None:
        super().__init__(address, _Handler)
        self.downstream = downstream


class Downstream:
    """The downstream, serving in a background thread; ``with`` starts and stops it."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # cuts hanging answers short at stop()
        self._routes: dict[str, Behaviour] = {}
        self._default = Behaviour()
        self._calls: list[Call] = []
        self._in_flight = 0
        self._max_concurrent = 0
        self._server = _Server((host, port), self)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="downstream", daemon=True
        )

    def start(self) -> Downstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Downstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"{self._scheme}://{self._server.server_address[0]}:{self.port}{path}"

    # --- behaviour ----------------------------------------------------------------------------

    def set(self, path: str | None = None, **behaviour: Any) -> Behaviour:
        """Change how ``path`` (or every path without its own behaviour, when None) answers."""
        new = Behaviour(**behaviour)
        with self._lock:
            if path is None:
                self._default = new
            else:
                self._routes[path] = new
        return new

    def fail(
        self, status: int = 503, *, retry_after: float | None = None, delay: float = 0.0
    ) -> None:
        self.set(status=status, retry_after=retry_after, delay=delay, body='{"error": "down"}')

    def hang(self, seconds: float) -> None:
        self.set(status=200, delay=seconds)

    def heal(self, *, delay: float = 0.0) -> None:
        self.set(status=200, delay=delay)

    def reset(self) -> None:
        """Forget every behaviour and call; concurrency counts from the calls still running."""
        with self._lock:
            self._routes = {}
            self._default = Behaviour()
            self._calls = []
            self._max_concurrent = self._in_flight

    # --- what it saw --------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def hits(self, path: str | None = None) -> list[float]:
        """When each call (to ``path``) arrived, on the monotonic clock, in arrival order."""
        return [c.monotonic for c in self.calls if path is None or c.path == path]

    def headers(self, path: str | None = None) -> list[dict[str, str]]:
        """The request headers of every call (to ``path``), in arrival order."""
        return [c.headers for c in self.calls if path is None or c.path == path]

    @property
    def max_concurrent(self) -> int:
        return self._max_concurrent

    def reset_concurrency(self) -> None:
        with self._lock:
            self._max_concurrent = self._in_flight

    # --- called by the handler ----------------------------------------------------------------

    def _arrived(self, call: Call) -> Behaviour:
        with self._lock:
            self._calls.append(call)
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)
            call.concurrent = self._in_flight
            return self._routes.get(call.path, self._default)

    def _finished(self, call: Call) -> None:
        with self._lock:
            self._in_flight -= 1
            call.finished_at = time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    downstream = Downstream(port=args.port).start()
    print(f"STUB {downstream.url('')}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        downstream.stop()


if __name__ == "__main__":
    main()
