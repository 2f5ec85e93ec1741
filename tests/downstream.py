"""A real HTTP downstream on 127.0.0.1 that a test can tell to answer, fail, hang or heal."""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    status: int = 200
    body: str = '{"ok": true}'
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Downstream:
    """``with Downstream() as ds: ds.url("/x")``; ``ds.set("/x", status=500)``; ``ds.hits("/x")``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._routes: dict[str, Behaviour] = {}
        self._default = Behaviour()
        self._hits: list[tuple[float, str, str]] = []
        self._headers: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        downstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                with downstream._lock:
                    downstream._hits.append((time.monotonic(), self.command, path))
                    downstream._headers.append((path, dict(self.headers.items())))
                    behaviour = downstream._routes.get(path, downstream._default)
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                body = behaviour.body.encode()
                try:
                    self.send_response(behaviour.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow answer

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Downstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://{self._server.server_address[0]}:{self.port}{path}"

    def headers(self, path: str | None = None) -> list[dict[str, str]]:
        """The request headers of every call (to ``path``), in arrival order."""
        with self._lock:
            return [h for p, h in self._headers if path is None or p == path]

    def set(self, path: str | None = None, **behaviour) -> None:
        """Change how ``path`` (or every unset path, when None) answers from now on."""
        with self._lock:
            if path is None:
                self._default = Behaviour(**behaviour)
            else:
                self._routes[path] = Behaviour(**behaviour)

    def hits(self, path: str | None = None) -> list[float]:
        with self._lock:
            return [t for t, _, p in self._hits if path is None or p == path]

    @staticmethod
    def json_body(data) -> str:
        return json.dumps(data)
