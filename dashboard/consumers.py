"""The dashboard socket: for staff who may see every job (``dashboard.access``); receives
a snapshot and then changes from this process's broadcaster, asks it for the state again when
the client saw a gap (``{"action": "resync"}``), and turns operator commands into service calls
(``dashboard.commands``). Nothing else.

The session and the account are checked again on every command and, with no command, every
``session_check_interval`` seconds: a socket whose session ended (signed out, expired, password
changed, account disabled) is closed with 4001, one whose account lost dashboard access with
4003, each after an ``error`` message saying so.
"""

from __future__ import annotations

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import access, broadcasting, commands, frames

log = logging.getLogger("resilient.dashboard")


class DashboardConsumer(AsyncWebsocketConsumer):
    # How long a signed-out dashboard may keep receiving snapshots: one session read and one
    # user read per open socket per interval.
    session_check_interval = 5.0

    subscribed = False
    ended = False
    watcher: asyncio.Task | None = None

    async def connect(self) -> None:
        session = self.scope.get("session")
        user = self.scope.get("user")
        self.session_key = getattr(session, "session_key", None)
        self.user_id = user.pk if user is not None and user.is_authenticated else None
        fresh, refusal = await database_sync_to_async(access.operator)(self.session_key, user_id=self.user_id)
        if refusal is not None:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        await self.accept()
        actions = await database_sync_to_async(commands.allowed_actions)(fresh)
        await self.send(text_data=json.dumps({"type": "hello", "user": fresh.get_username(), "actions": actions}))
        self.broadcaster = await broadcasting.subscribe(self)
        self.subscribed = True
        self.watcher = asyncio.create_task(self._watch())

    async def disconnect(self, code: int) -> None:
        if self.watcher is not None and self.watcher is not asyncio.current_task():
            self.watcher.cancel()
        await self._unsubscribe()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ended:
            return
        try:
            message = frames.frame_decode(text_data, bytes_data)
        except frames.FrameRejected as exc:
            await self.send(text_data=json.dumps(frames.frame_error(exc)))
            return
        if commands.is_resync(message):
            await self._resync(message)
            return
        reply, refusal = await database_sync_to_async(commands.command_receive)(
            session_key=self.session_key, user_id=self.user_id, message=message
        )
        await self.send(text_data=json.dumps(reply))
        if refusal is not None:
            await self._end(refusal)

    async def _resync(self, message: dict) -> None:
        """The client saw a gap in ``seq``: the whole state again, once the session still holds."""
        _, refusal = await database_sync_to_async(access.operator)(self.session_key, user_id=self.user_id)
        if refusal is not None:
            await self.send(text_data=json.dumps(commands.refusal_reply(refusal, message=message)))
            await self._end(refusal)
        elif self.subscribed:
            await self.broadcaster.resync(self)

    async def push(self, text: str) -> None:
        """Called by the broadcaster with a ready-made snapshot or changes message."""
        if not self.ended:
            await self.send(text_data=text)

    async def _watch(self) -> None:
        """Close the socket soon after its session ends, even if no command ever comes."""
        while not self.ended:
            await asyncio.sleep(self.session_check_interval)
            try:
                _, refusal = await database_sync_to_async(access.operator)(self.session_key, user_id=self.user_id)
            except Exception:
                log.exception("dashboard session check failed; trying again next interval")
                continue
            if refusal is not None:
                try:
                    await self.send(text_data=json.dumps(commands.refusal_reply(refusal, message=None)))
                except Exception:  # the client went away meanwhile: closing is all that is left
                    log.debug("dashboard socket gone before its refusal was sent", exc_info=True)
                await self._end(refusal)

    async def _end(self, refusal: access.Refusal) -> None:
        self.ended = True
        await self._unsubscribe()
        await self.close(code=refusal.close_code)

    async def _unsubscribe(self) -> None:
        if self.subscribed:
            self.subscribed = False
            await broadcasting.unsubscribe(self)
