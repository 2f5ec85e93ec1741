"""Whatever a client sends as a frame, the operator socket answers with a JSON error, changes
nothing and stays usable: deep nesting, oversized frames, binary frames, non-objects, NaN."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from dashboard import frames
from jobs import jsonio
from jobs.models import BreakerEvent, Job
from tests.support.dashboard_socket import command, next_reply, open_dashboard

pytestmark = pytest.mark.django_db(transaction=True)


async def still_usable(comm) -> None:
    reply = await command(comm, action="submit", kind="noop", ref="after")
    assert (reply["type"], reply["ref"]) == ("result", "after"), reply


async def unchanged() -> bool:
    return await database_sync_to_async(lambda: not Job.objects.exists() and not BreakerEvent.objects.exists())()


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        pytest.param("[" * 60_000, "invalid", "nested too deeply", id="recursion-bomb"),  # under 64 KiB
        pytest.param('{"action": "submit", "kind": "noop", "payload": ' + "[" * 80 + "]" * 80 + "}", "invalid",
                     f"nests deeper than {frames.MAX_DEPTH} levels", id="too-deep"),
        pytest.param(json.dumps({"action": "submit", "kind": "noop", "payload": {"blob": "x" * frames.MAX_BYTES}}),
                     "too_large", f"a frame is at most {frames.MAX_BYTES} bytes", id="too-large"),
        pytest.param('{"action": "submit", "kind": "noop", "payload": {"x": NaN}}', "invalid", "NaN is not valid JSON",
                     id="nan"),
        pytest.param('{"action": "submit", "kind": "noop", "payload": {"x": -Infinity}}', "invalid",
                     "-Infinity is not valid JSON", id="infinity"),
        pytest.param("not json", "invalid", None, id="not-json"),
        pytest.param("", "invalid", None, id="empty"),
        pytest.param("[1, 2]", "invalid", "a command must be a JSON object", id="array"),
        pytest.param('"submit"', "invalid", "a command must be a JSON object", id="string"),
        pytest.param("null", "invalid", "a command must be a JSON object", id="null"),
        pytest.param("42", "invalid", "a command must be a JSON object", id="number"),
    ],
)
async def test_bad_text_frames_get_an_error_and_change_nothing(operator, text, code, message):
    comm, _, _ = await open_dashboard(operator)
    await comm.send_input({"type": "websocket.receive", "text": text})  # send_to refuses ""
    reply = await next_reply(comm)
    assert (reply["type"], reply["code"], reply["ref"], reply["action"]) == ("error", code, None, None), reply
    if message:
        assert message in reply["message"], reply
    assert await unchanged()
    await still_usable(comm)
    await comm.disconnect()


async def test_binary_frames_are_refused(operator):
    comm, _, _ = await open_dashboard(operator)
    await comm.send_to(bytes_data=json.dumps({"action": "submit", "kind": "noop"}).encode())
    reply = await next_reply(comm)
    assert (reply["type"], reply["code"], reply["message"]) == ("error", "invalid", "binary frames are not accepted")
    assert await unchanged()
    await still_usable(comm)
    await comm.disconnect()


async def test_payload_depth_is_the_services_rule_below_the_frame_limit(operator):
    """Between the payload limit (MAX_JSON_DEPTH, 32) and the frame limit the service answers,
    with the same field error as the REST API."""
    comm, _, _ = await open_dashboard(operator)
    fine, deep = 1, 1
    for _ in range(31):
        fine = {"v": fine}
    for _ in range(40):
        deep = {"v": deep}
    assert (await command(comm, action="submit", kind="noop", payload=fine))["type"] == "result"
    reply = await command(comm, action="submit", kind="noop", payload=deep)
    assert (reply["type"], reply["field"], reply["message"]) == ("error", "payload", "nests deeper than 32 levels")
    await comm.disconnect()


def test_depth_counts_objects_and_arrays():
    assert jsonio.depth({}) == 1 and jsonio.depth([]) == 1 and jsonio.depth(3) == 0
    assert jsonio.depth({"a": [1, {"b": []}]}) == 4
    assert jsonio.depth(json.loads("[" * 500 + "]" * 500)) == 500
