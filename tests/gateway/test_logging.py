"""What the gateway logs carries the room, user and connection ids, and the error code."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from tests.conftest import StartEngine
from tests.support import viewer

pytestmark = pytest.mark.integration


async def test_log_lines_for_a_viewer_carry_room_user_connection_and_request_ids(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with viewer(engine.address.ws_url, engine.mint_token("logan", room)) as v:  # type: ignore[union-attr]
            await v.send(type="like", count=0, rid="req-7")
            assert (await v.recv_type("error"))["code"] == "bad_field"
    joined = next(e for e in logs if e["event"] == "viewer joined")
    error = next(e for e in logs if e["event"] == "client error")
    for line in (joined, error):
        assert line["room"] == room and line["user"] == "logan" and line["conn"]
    assert error["code"] == "bad_field" and error["rid"] == "req-7"
    assert error["conn"] == joined["conn"]
