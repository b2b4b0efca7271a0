"""Room lifecycle, rehearsal, stream notices, anchor replies, viewer reservations and shares, end
to end: commands in, viewer frames and host events out."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed

from engine.events.consumer import parse_entry
from engine.store import keys
from engine.store.store import open_redis
from tests.conftest import StartEngine
from tests.control.support import address, control_socket
from tests.support import RawClient, viewer

pytestmark = pytest.mark.integration


async def event_types(redis_url: str, room: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    async with open_redis(redis_url) as redis:
        entries = await redis.xrange(keys.events(room))
    events = [parse_entry(room, e) for e in entries]
    return [(e.type, e.data) for e in events if e is not None and not e.type.startswith("viewer.")]


async def refused_code(port: int, target: str) -> int | None:
    client = await RawClient.connect(port, target)
    return await client.close_code()


async def test_created_started_ended_with_viewer_popups_and_host_events(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(control_socket="none")
    info = await engine.command("create_room", room=room, title=" Spring tea ", anchor="a1",
                                anchor_name="Lily", starts_at=4_000_000_000_000,
                                cover="https://cdn.example/c.jpg", preview="Tea at 8")  # fmt: skip
    assert info["status"] == "scheduled" and info["title"] == "Spring tea"
    updated = await engine.command("update_room", room=room, title="Spring tea II")
    assert updated["title"] == "Spring tea II" and updated["preview"] == "Tea at 8"
    async with viewer(address(engine).ws_url, engine.mint_token("v1", room)) as v:
        assert (await engine.command("start_room", room=room))["status"] == "live"
        popup = (await v.recv_type("popup"))["popup"]
        assert (popup["kind"], popup["data"]) == ("room", {"status": "live"})
        notice = await engine.command("stream_notice", room=room, state="interrupted",
                                      text="Back in a minute")  # fmt: skip
        popup = (await v.recv_type("popup"))["popup"]
        assert popup["id"] == notice["id"] and popup["kind"] == "stream"
        assert popup["data"] == {"state": "interrupted", "text": "Back in a minute"}
        async with viewer(address(engine).ws_url, engine.mint_token("v2", room)) as late:
            assert late.welcome["snapshot"]["popup"]["data"]["state"] == "interrupted"  # type: ignore[attr-defined]
        await engine.command("stream_notice", room=room, state="resumed")
        assert (await v.recv_type("popup"))["popup"]["data"] == {"state": "resumed"}
        ended = await engine.command("end_room", room=room)
        assert ended["status"] == "ended" and ended["ended_at"] >= ended["started_at"]
        assert (await v.recv_type("popup"))["popup"]["data"] == {"status": "ended"}
    types = [t for t, _ in await event_types(redis_url, room)]
    assert types == ["room.created", "room.updated", "room.started", "room.ended"]


async def test_rehearsal_lets_only_staff_in_and_closes_viewers_on_every_node(
    start_engine: StartEngine, room: str
) -> None:
    node_a = await start_engine(control_socket="none")
    node_b = await start_engine(control_socket="none")
    await node_a.command("create_room", room=room, title="Test live", anchor="a1")
    target = f"/v1/ws?token={node_a.mint_token('viewer-x', room)}"
    async with (
        viewer(address(node_a).ws_url, node_a.mint_token("v-a", room)) as on_a,
        viewer(address(node_b).ws_url, node_b.mint_token("v-b", room)) as on_b,
        viewer(address(node_b).ws_url, node_b.mint_token("a1", room, role="anchor")) as staff,
    ):
        assert (await node_a.command("set_rehearsal", room=room, on=True))["rehearsal"] is True
        assert (await on_a.closed(timeout=10))[0] == 4011  # this node: at once
        code, reason = await on_b.closed(timeout=10)  # the other node: within its pulse
        assert code == 4011 and reason.startswith("rehearsal")
        assert await refused_code(address(node_b).ws_port, target) == 4011
        await staff.send(type="ping", rid=1)
        assert (await staff.recv_type("pong"))["rid"] == 1  # staff stay
        async with viewer(address(node_a).ws_url, node_a.mint_token("a2", room, role="admin")):
            pass  # staff may still join
        await node_b.command("set_rehearsal", room=room, on=False)
        with trio.fail_after(10):  # every node's cache expires within a second
            while True:
                try:
                    async with viewer(address(node_a).ws_url, node_a.mint_token("v-c", room)):
                        break
                except ConnectionClosed:  # refused: node A's cache still says rehearsal
                    await trio.sleep(0.2)


async def test_anchor_reply_reaches_viewers_as_an_at_reply(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(control_socket="none")
    await engine.command("create_room", room=room, title="t", anchor="a1", anchor_name="Lily")
    async with viewer(address(engine).ws_url, engine.mint_token("v1", room)) as v:
        async with control_socket(engine, engine.mint_token("a1", room, role="anchor",
                                                            name="Lily A.")) as anchor:  # fmt: skip
            sent = await anchor.call("reply", text="Yes, size M is left!", reply_to="v1")
            assert sent.result["reply_to"] == {"user": "v1"}
            refused = await anchor.call("reply", text="hi", user="someone-else")
            assert refused.code == "forbidden"
        (msg,) = (await v.recv_type("chat"))["msgs"]
        assert msg["text"] == "Yes, size M is left!" and msg["user"] == "a1"
        assert msg["role"] == "anchor" and msg["reply_to"] == {"user": "v1"}
        assert msg["name"] == "Lily A."
        by_host = await engine.command("reply", room=room, text="Welcome all")  # as the anchor
        assert (by_host["user"], by_host["name"]) == ("a1", "Lily")
        assert (await v.recv_type("chat"))["msgs"][0]["text"] == "Welcome all"


async def test_viewers_reserve_over_the_gateway_and_the_host_hears_of_it(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(control_socket="none")
    url = address(engine).ws_url
    async with viewer(url, engine.mint_token("v1", room)) as v:
        await v.send(type="reserve", rid="r0")
        error = await v.recv_type("error", rid="r0")
        assert error["code"] == "room_not_found"
        await engine.command("create_room", room=room, title="t", anchor="a1",
                             starts_at=4_000_000_000_000)  # fmt: skip
        await v.send(type="reserve", rid="r1")
        assert (await v.recv_type("result", rid="r1"))["data"] == {
            "new": True, "starts_at": 4_000_000_000_000
        }  # fmt: skip
        await v.send(type="reserve", rid="r2")
        assert (await v.recv_type("result", rid="r2"))["data"]["new"] is False
        assert (await engine.command("get_room", room=room))["reservations"] == 1
        await v.send(type="unreserve", rid="r3")
        assert (await v.recv_type("result", rid="r3"))["data"] == {"removed": True}
        await v.send(type="reserve", rid="r4")
        await v.recv_type("result", rid="r4")
        await engine.command("start_room", room=room)
        await v.send(type="unreserve", rid="r5")
        await v.recv_type("result", rid="r5")
        await v.send(type="reserve", rid="r6")  # a live room takes no reservations
        assert (await v.recv_type("error", rid="r6"))["code"] == "bad_state"
    events = [(t, d.get("user"), d.get("source")) for t, d in await event_types(redis_url, room)
              if t.startswith("reservation.")]  # fmt: skip
    assert events == [
        ("reservation.created", "v1", "viewer"),
        ("reservation.cancelled", "v1", "viewer"),
        ("reservation.created", "v1", "viewer"),
        ("reservation.cancelled", "v1", "viewer"),
    ]


async def test_share_recorded_is_idempotent_by_the_hosts_share_id(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(control_socket="none")
    first = await engine.command("share_recorded", room=room, share_id="sh-1", user="u1",
                                 channel="wechat")  # fmt: skip
    again = await engine.command("share_recorded", room=room, share_id="sh-1", user="u1")
    other = await engine.command("share_recorded", room=room, share_id="sh-2", user="u1")
    assert (first["new"], again["new"], other["new"]) == (True, False, True)
    assert first["coupon"] is None
    shares = [d for t, d in await event_types(redis_url, room) if t == "share.recorded"]
    assert shares == [
        {"share_id": "sh-1", "user": "u1", "channel": "wechat"},
        {"share_id": "sh-2", "user": "u1"},
    ]
