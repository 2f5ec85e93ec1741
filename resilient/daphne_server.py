"""Daphne that refuses an oversized request body while it arrives, instead of after buffering it.

Twisted spools every body to a temporary file, and Daphne then copies all of it into the ASGI
app's input queue before the app runs: a 100 MB upload costs the server 100 MB of memory even
though the app answers 413 without reading it. Here the request hands the app an empty body as
soon as it knows the body is too large (its Content-Length, or a chunked body passing the limit),
drops the rest of the bytes unread into any buffer, and the app (resilient.body_limit) answers
413. After the answer the connection is half-closed and drained for a moment before it is
closed, so the client reads the 413 instead of a reset.
"""

from __future__ import annotations

import daphne.server
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import reactor

from resilient.body_limit import max_body_bytes

# How long a refused client may keep sending before its connection is cut.
LINGER_SECONDS = 5.0


def _discard(data: bytes) -> None:
    """Stands in for the channel's byte handlers once a body is refused."""


class BoundedRequest(WebRequest):
    """A Daphne request whose body is never buffered past the limit."""

    _limit: int | None = None
    _received = 0
    _refused = False
    _dispatched = False

    def gotLength(self, length: int | None) -> None:
        # The request line is parsed before the headers: its path decides the limit.
        path = (getattr(self.channel, "_path", b"") or b"").split(b"?", 1)[0]
        self._limit = max_body_bytes(path.decode("latin-1"))
        if self._limit is not None and length is not None and length > self._limit:
            # Content-Length over the limit: end the request here with an empty body; the app
            # sees the header and refuses. No 100-continue, so a polite client never sends it.
            self.requestHeaders.removeHeader(b"Expect")
            self.channel.length = 0
            self._refuse()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if self._limit is not None:
            self._received += len(data)
            if self._received > self._limit:
                # Keep limit + 1 bytes (the app counts them and refuses), drop the rest.
                data = data[: len(data) - (self._received - self._limit - 1)]
                self._refuse()
                # Dispatch once the transfer decoder has returned: it is still on the stack.
                reactor.callLater(0, self._dispatch_early)
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._dispatched = True
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        channel = self.channel
        channel.persistent = False
        channel.dataReceived = channel.rawDataReceived = _discard
        channel.loseConnection = self._linger_close

    def _dispatch_early(self) -> None:
        if self._dispatched or self.channel is None:
            return
        self.channel._transferDecoder = None
        self.channel.allContentReceived()

    def _linger_close(self) -> None:
        # Closing while the client still sends makes the kernel answer with a reset, which can
        # destroy the 413 before the client reads it: half-close and drain for a while first.
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:
            transport.loseConnection()
            return
        half_close()
        transport.resumeProducing()
        reactor.callLater(LINGER_SECONDS, _abort_if_open, transport)


def _abort_if_open(transport) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            protocol.requestFactory = BoundedRequest
        return protocol


class Server(daphne.server.Server):
    """daphne.server.Server whose HTTP requests are BoundedRequest."""

    # Daphne builds its HTTP factory inside run() (``self.http_factory = HTTPFactory(self)``):
    # take that assignment and keep a BoundedHTTPFactory instead, without patching daphne.
    @property
    def http_factory(self) -> HTTPFactory:
        return self._bounded_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        self._bounded_factory = BoundedHTTPFactory(self)
