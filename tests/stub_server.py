"""A real HTTP downstream on 127.0.0.1 that tests can tell to fail, hang or heal.

In-process::

    with StubServer() as stub:
        stub.fail(503, retry_after=5)   # every call answers 503 (with Retry-After)
        stub.hang(2.0)                  # every call waits 2 s before answering
        stub.heal(delay=0.5)            # 200 again (optionally slow)
        stub.calls, stub.max_concurrent

Out of process (or from another language): ``python -m tests.stub_server --port 0`` prints
``STUB http://127.0.0.1:PORT`` and serves the same control API:
``POST /_control {"status": 503, "delay": 0, "retry_after": null}``, ``GET /_calls``,
``POST /_reset``. Any other path is "the downstream".
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    retry_after: float | None = None
    body: str = '{"ok": true}'


@dataclass
class Call:
    method: str
    path: str
    at: float
    body: str
    status: int = 0
    finished_at: float | None = None


@dataclass
class _State:
    behaviour: Behaviour = field(default_factory=Behaviour)
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    max_concurrent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _control(self, body: str) -> None:
        state = self.server.state
        if self.path == "/_calls":
            with state.lock:
                calls = [c.__dict__ for c in state.calls]
                payload = {"count": len(calls), "max_concurrent": state.max_concurrent, "calls": calls}
            self._send(200, json.dumps(payload))
        elif self.path == "/_reset":
            self.server.reset()
            self._send(200, "{}")
        elif self.path == "/_control":
            options = json.loads(body or "{}")
            with state.lock:
                state.behaviour = Behaviour(**options)
            self._send(200, json.dumps(state.behaviour.__dict__))
        else:
            self._send(404, '{"error": "unknown control path"}')

    def _serve(self) -> None:
        body = self._body()
        if self.path.startswith("/_"):
            return self._control(body)
        state = self.server.state
        with state.lock:
            behaviour = state.behaviour
            call = Call(self.command, self.path, time.time(), body)
            state.calls.append(call)
            state.in_flight += 1
            state.max_concurrent = max(state.max_concurrent, state.in_flight)
        try:
            if behaviour.delay:
                state.stopping.wait(behaviour.delay)
            headers = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else {}
            call.status = behaviour.status
            self._send(behaviour.status, behaviour.body, headers)
        finally:
            with state.lock:
                state.in_flight -= 1
                call.finished_at = time.time()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.state = _State()

    def reset(self) -> None:
        with self.state.lock:
            self.state.behaviour = Behaviour()
            self.state.calls = []
            self.state.max_concurrent = self.state.in_flight


class StubServer:
    """The downstream, serving on 127.0.0.1 in a background thread."""

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control ------------------------------------------------------------------------------

    def _set(self, **options: Any) -> None:
        with self._server.state.lock:
            self._server.state.behaviour = Behaviour(**options)

    def fail(self, status: int = 503, *, retry_after: float | None = None, delay: float = 0.0) -> None:
        self._set(status=status, retry_after=retry_after, delay=delay, body='{"error": "down"}')

    def hang(self, seconds: float) -> None:
        self._set(status=200, delay=seconds)

    def heal(self, *, delay: float = 0.0) -> None:
        self._set(status=200, delay=delay)

    def reset(self) -> None:
        self._server.reset()

    @property
    def calls(self) -> list[Call]:
        with self._server.state.lock:
            return list(self._server.state.calls)

    @property
    def max_concurrent(self) -> int:
        return self._server.state.max_concurrent

    def reset_concurrency(self) -> None:
        with self._server.state.lock:
            self._server.state.max_concurrent = self._server.state.in_flight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stub = StubServer(args.port).start()
    print(f"STUB {stub.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
