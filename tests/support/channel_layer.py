"""Reading a channel layer from tests."""

from __future__ import annotations

import asyncio


async def messages_received(layer, channel: str, *, quiet: float) -> int:
    """Read ``channel`` until no message comes for ``quiet`` seconds; how many came."""
    count = 0
    while True:
        try:
            await asyncio.wait_for(layer.receive(channel), timeout=quiet)
        except TimeoutError:
            return count
        count += 1
