"""The dashboard socket: staff only; receives snapshots from this process's broadcaster and
turns operator commands into service calls (``dashboard.commands``). Nothing else."""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import broadcasting, commands


class DashboardConsumer(AsyncWebsocketConsumer):
    subscribed = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        await self.accept()
        actions = await database_sync_to_async(commands.allowed_actions)(user)
        await self.send(text_data=json.dumps({"type": "hello", "user": user.get_username(), "actions": actions}))
        await broadcasting.subscribe(self)
        self.subscribed = True

    async def disconnect(self, code: int) -> None:
        if self.subscribed:
            self.subscribed = False
            await broadcasting.unsubscribe(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
        except ValueError:
            message = None
        reply = await database_sync_to_async(commands.command_run)(user=self.scope["user"], message=message)
        await self.send(text_data=json.dumps(reply))

    async def push(self, text: str) -> None:
        """Called by the broadcaster with a ready-made snapshot message."""
        await self.send(text_data=text)
