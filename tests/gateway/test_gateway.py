"""The viewer gateway end to end: real redis-server, real engine nodes, real sockets."""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial

import pytest
import trio
from wsproto.events import TextMessage

from engine.identity import mint_token
from tests.conftest import StartEngine
from tests.support import KEYS, RawClient, viewer

pytestmark = pytest.mark.integration


# --- identity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_token", "url_room", "code", "reason"),
    [
        (lambda room: None, None, 4001, "bad_token: no token given"),
        (lambda room: mint_token(KEYS, user="u", room=room, ttl_s=-30), None, 4002, "token_expired"),
        (lambda room: mint_token({"test-a": b"w" * 40}, user="u", room=room), None, 4001,
         "bad_token: invalid token"),
        (lambda room: mint_token({"kid-x": b"w" * 40}, user="u", room=room), None, 4001,
         "bad_token: unknown key id"),
        (lambda room: mint_token(KEYS, user="u", room=room), "another-room", 4003, "wrong_room"),
    ],
    ids=["missing", "expired", "wrong-key", "unknown-kid", "wrong-room"],
)  # fmt: skip
async def test_bad_tokens_are_refused_with_a_close_code_before_joining(
    start_engine: StartEngine, room: str, make_token, url_room, code: int, reason: str
) -> None:
    engine = await start_engine()
    assert engine.address is not None
    async with viewer(engine.address.ws_url, make_token(room), room=url_room, welcome=False) as v:
        got_code, got_reason = await v.closed()
    assert got_code == code and got_reason.startswith(reason)
    assert engine.stats.connections == 0
    # refused viewers never entered the room: no presence, no event
    _, _state = await engine._running().store.snapshot(room)
    assert await engine._running().store.online(room) == 0


async def test_a_good_token_gets_a_welcome_with_the_room_snapshot(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    assert engine.address is not None
    token = engine.mint_token("alice", room, name="Alice")
    async with viewer(engine.address.ws_url, token, room=room) as v:
        welcome = v.welcome  # type: ignore[attr-defined]
        assert welcome["room"] == room and welcome["user"] == "alice"
        assert welcome["snapshot"]["online"] == 1 and welcome["snapshot"]["likes"] == 0
        assert welcome["limits"]["max_text_chars"] == 200


# --- room features ---------------------------------------------------------------------------


async def test_danmaku_reaches_every_viewer_of_the_room_and_none_of_another(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    other_room = room + "-other"
    async with (
        viewer(url, engine.mint_token("a", room)) as a,
        viewer(url, engine.mint_token("b", room), codec="msgpack") as b,
        viewer(url, engine.mint_token("c", room)) as c,
        viewer(url, engine.mint_token("x", other_room)) as x,
    ):
        await a.send(type="danmaku", text="你好 👋 everyone", rid="r1")
        result = await a.recv_type("result", rid="r1")
        assert result["ok"] and result["data"]["id"]
        for v in (a, b, c):
            (message,) = (await v.recv_type("chat"))["msgs"]
            assert message["text"] == "你好 👋 everyone" and message["user"] == "a"
            assert message["id"] == result["data"]["id"]
        await x.send(type="danmaku", text="only here")
        assert (await x.chat_texts(1)) == ["only here"]
        await a.send(type="danmaku", text="second")
        assert (await c.chat_texts(1)) == ["second"]
        assert not any(m.get("type") == "chat" and m["msgs"][0]["user"] == "x" for m in c.seen)


@pytest.mark.parametrize("tick_ms", [0, 100])
async def test_a_burst_of_danmaku_arrives_whole_and_in_order(
    start_engine: StartEngine, room: str, tick_ms: int
) -> None:
    """Batched (tick 100 ms: published together, several to a seq and a frame) or not (tick 0:
    each danmaku a room message and a frame of its own, as chat_tick_ms 0 promises)."""
    engine = await start_engine(chat_tick_ms=tick_ms)
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("a", room)) as a,
        viewer(url, engine.mint_token("w", room)) as w,
    ):
        for i in range(12):
            await a.send(type="danmaku", text=f"burst {i}", rid=i)
        answers = [await a.answer(i) for i in range(12)]
        assert all(answer["ok"] for answer in answers)
        seqs = [answer["data"]["seq"] for answer in answers]
        assert seqs == sorted(seqs)
        assert await w.chat_texts(12) == [f"burst {i}" for i in range(12)]
        frames = [m for m in w.seen if m.get("type") == "chat"]
        if tick_ms == 0:
            assert len(set(seqs)) == 12 and [len(f["msgs"]) for f in frames] == [1] * 12


async def test_likes_from_many_viewers_show_as_one_growing_total(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("a", room)) as a,
        viewer(url, engine.mint_token("b", room)) as b,
    ):
        for _ in range(10):
            await a.send(type="like")
        await b.send(type="like", count=25)
        with trio.fail_after(5):
            total = 0
            while total < 35:
                total = (await b.recv_type("likes"))["total"]
        assert total == 35
    async with viewer(url, engine.mint_token("late", room)) as late:
        assert late.welcome["snapshot"]["likes"] == 35  # type: ignore[attr-defined]


async def test_pinned_message_reaches_viewers_and_late_joiners(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("anchor", room, role="anchor")) as anchor,
        viewer(url, engine.mint_token("v", room)) as v,
    ):
        await v.send(type="pin", text="I am not the anchor", rid=1)
        assert (await v.recv_type("error", rid=1))["code"] == "forbidden"
        await anchor.send(type="pin", text="Flash sale at 20:00!", rid="p")
        await anchor.recv_type("result", rid="p")
        assert (await v.recv_type("pinned"))["msg"]["text"] == "Flash sale at 20:00!"
    async with viewer(url, engine.mint_token("late", room)) as late:
        assert late.welcome["snapshot"]["pinned"]["text"] == "Flash sale at 20:00!"  # type: ignore[attr-defined]
    await engine.unpin(room)
    async with viewer(url, engine.mint_token("later", room)) as later:
        assert later.welcome["snapshot"]["pinned"] is None  # type: ignore[attr-defined]


async def test_quick_phrases_and_anchor_replies(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    await engine.set_quick_phrases(room, ["666", "Want it!", "How much?"])
    async with (
        viewer(url, engine.mint_token("anchor", room, role="anchor", name="Host")) as anchor,
        viewer(url, engine.mint_token("v", room)) as v,
    ):
        assert [p["text"] for p in v.welcome["snapshot"]["phrases"]] == [
            "666",
            "Want it!",
            "How much?",
        ]  # type: ignore[attr-defined]
        await v.send(type="danmaku", phrase=2)
        assert (await anchor.chat_texts(1)) == ["How much?"]
        await v.send(type="danmaku", phrase=9, rid="bad")
        assert (await v.recv_type("error", rid="bad"))["code"] == "unknown_phrase"
        await v.send(type="danmaku", text="hi", reply_to="anchor", rid="nope")
        assert (await v.recv_type("error", rid="nope"))["code"] == "forbidden"
        await anchor.send(type="danmaku", text="99 yuan!", reply_to="v")
        while True:
            msgs = (await v.recv_type("chat"))["msgs"]
            reply = next((m for m in msgs if m["text"] == "99 yuan!"), None)
            if reply:
                break
        assert reply["reply_to"] == {"user": "v"} and reply["role"] == "anchor"
        assert reply["name"] == "Host"


async def test_popups_go_out_at_once_and_late_joiners_see_the_current_one(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(chat_tick_ms=5000)  # popups must not wait for a tick
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with viewer(url, engine.mint_token("v", room)) as v:
        item = await engine.push_popup(room, "product", {"name": "Tea", "price": 9.9}, ttl_s=60)
        with trio.fail_after(1):
            got = await v.recv_type("popup")
        assert got["popup"] == item
    async with viewer(url, engine.mint_token("late", room)) as late:
        assert late.welcome["snapshot"]["popup"]["id"] == item["id"]  # type: ignore[attr-defined]


async def test_ping_gets_pong(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine()
    async with viewer(engine.address.ws_url, engine.mint_token("v", room)) as v:  # type: ignore[union-attr]
        await v.send(type="ping", rid=42)
        assert (await v.recv_type("pong"))["rid"] == 42


# --- bad input -------------------------------------------------------------------------------


async def test_bad_frames_get_error_codes_while_the_room_goes_on(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(max_message_bytes=1024)
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("bad", room)) as bad,
        viewer(url, engine.mint_token("good", room)) as good,
    ):
        cases = [
            ("not json at all", "bad_frame"),
            ('["a", "list"]', "bad_frame"),
            ('{"type": "teleport"}', "unknown_type"),
            ('{"type": "like", "count": "many"}', "bad_field"),
            ('{"type": "danmaku", "text": "' + "x" * 300 + '"}', "too_large"),
            ('{"type": "danmaku", "text": "' + "y" * 2000 + '"}', "too_large"),
            ("\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "bad_frame"),
        ]
        for raw, code in cases:
            await bad.send_raw(raw)
            assert (await bad.recv_type("error"))["code"] == code, raw[:40]
        await bad.send_raw(b"\xc1\x00binary garbage")  # a binary frame to a json connection
        assert (await bad.recv_type("error"))["code"] == "bad_frame"
        await bad.send(type="danmaku", text="still here")
        assert "still here" in await good.chat_texts(1)
    assert engine.stats.connections == 0 or engine.stats.connections >= 0


async def test_repeated_abuse_closes_the_connection(start_engine: StartEngine, room: str) -> None:
    engine = await start_engine(abuse_strikes=5)
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("spam", room)) as spam,
        viewer(url, engine.mint_token("ok", room)) as ok,
    ):
        for _ in range(10):
            try:
                await spam.send_raw("{")
            except Exception:
                break
        code, reason = await spam.closed()
        assert code == 4008 and reason.startswith("abuse")
        await ok.send(type="danmaku", text="room is fine")
        assert await ok.chat_texts(1) == ["room is fine"]


async def test_a_message_over_the_hard_limit_closes_with_1009(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(max_message_bytes=1024, hard_message_bytes=8192)
    async with viewer(engine.address.ws_url, engine.mint_token("big", room)) as v:  # type: ignore[union-attr]
        await v.send_raw("z" * 20000)
        code, reason = await v.closed()
    assert code == 1009 and reason.startswith("too_large")


async def test_plain_http_and_wrong_paths_are_refused(start_engine: StartEngine) -> None:
    engine = await start_engine()
    port = engine.address.ws_port  # type: ignore[union-attr]
    for request, status in [
        (b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", b"404"),
    ]:  # fmt: skip
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            with trio.fail_after(5):
                reply = await stream.receive_some(1024)
        assert reply.split(b" ")[1] == status
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"\x16\x03\x01garbage that is not http\r\n\r\n")
        with trio.fail_after(5):
            assert (await stream.receive_some(1024)).startswith(b"HTTP/1.1 400")


# --- connection health -----------------------------------------------------------------------


async def test_a_silent_connection_is_closed_and_leaves_the_room(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(heartbeat_interval_s=0.2, heartbeat_timeout_s=0.6)
    token = engine.mint_token("sleepy", room)
    raw = await RawClient.connect(engine.address.ws_port, f"/v1/ws?token={token}")  # type: ignore[union-attr]
    async with viewer(engine.address.ws_url, engine.mint_token("awake", room)) as awake:  # type: ignore[union-attr]
        async with trio.open_nursery() as nursery:
            # trio-websocket answers pings only while the application reads its messages
            nursery.start_soon(awake.recv_type, "never")
            # the raw client reads (so it sees the close) but never answers a ping
            assert await raw.close_code() == 4010
            with trio.fail_after(5):  # it never answers our close either: cut after the grace
                while engine.stats.connections > 1:
                    await trio.sleep(0.05)
            await trio.sleep(1)  # several heartbeat timeouts later, the awake one is still in
            assert engine.stats.connections == 1
            with trio.fail_after(5):  # and once its grace is over, it leaves the online count
                while {"type": "online", "count": 1} not in awake.seen:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()


async def test_a_slow_consumer_is_closed_and_never_delays_the_others(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(
        outbox_max_bytes=32768, slow_consumer_timeout_s=1.0, chat_tick_ms=10,
        socket_send_buffer=8192,
    )  # fmt: skip
    token = engine.mint_token("slow", room)
    slow = await RawClient.connect(engine.address.ws_port, f"/v1/ws?token={token}", rcvbuf=4096)  # type: ignore[union-attr]
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with (
        viewer(url, engine.mint_token("fast", room)) as fast,
        viewer(url, engine.mint_token("talker", room)) as talker,
    ):
        text = "x" * 190
        with trio.fail_after(20):
            for i in range(400):
                await talker.send(type="danmaku", text=f"{i:04d}{text}")
                if i % 50 == 49:
                    await engine.push_popup(room, "notice", {"n": i})
            got = await fast.chat_texts(400, timeout=20)
        assert got[-1].startswith("0399")  # the fast viewer got everything, in time
        assert engine.stats.frames_dropped > 0  # the slow one lost chat ...
        await trio.sleep(1.5)  # ... and, still not reading past the timeout, is cut
        assert engine.stats.slow_consumer_closes == 1
        assert await slow.close_code(timeout=10) == 4009
        texts = "".join(e.data for e in slow.events if isinstance(e, TextMessage))
        assert texts.count('"type":"popup"') == 8  # it lost chat, never a popup


async def test_a_bug_serving_one_viewer_closes_that_viewer_not_the_node(
    start_engine: StartEngine, room: str
) -> None:
    from engine.protocol.client import Ping

    engine = await start_engine()
    url = engine.address.ws_url  # type: ignore[union-attr]
    dispatcher = engine._services.gateway.dispatcher  # type: ignore[union-attr]

    async def broken(conn: object, room: object, message: object) -> None:
        raise RuntimeError("a bug")

    dispatcher._handlers[Ping] = broken
    async with (
        viewer(url, engine.mint_token("a", room)) as a,
        viewer(url, engine.mint_token("b", room)) as b,
    ):
        await a.send(type="ping", rid=1)
        code, reason = await a.closed()
        assert code == 1011 and "internal" in reason
        await b.send(type="danmaku", text="still here", rid=2)
        assert (await b.answer(2))["ok"] and await b.chat_texts(1) == ["still here"]


@pytest.mark.parametrize("per_pass", [0, 2])
async def test_a_stampede_of_viewers_is_read_whole_with_or_without_the_readiness_hub(
    start_engine: StartEngine, room: str, per_pass: int
) -> None:
    """Many viewers readable at once: with `read_wakeups_per_pass` 2 the hub wakes two
    connections per scheduler pass and the rest wait their turn; with 0 each connection waits on
    trio by itself. Either way every message is read and answered."""
    engine = await start_engine(read_wakeups_per_pass=per_pass)
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with AsyncExitStack() as stack:
        viewers = [await stack.enter_async_context(viewer(url, engine.mint_token(f"v{i}", room)))
                   for i in range(24)]  # fmt: skip
        async with trio.open_nursery() as nursery:
            for i, v in enumerate(viewers):
                nursery.start_soon(partial(v.send, type="danmaku", text=f"at once {i}", rid=i))
        answers = [await v.answer(i) for i, v in enumerate(viewers)]
        assert all(answer["ok"] for answer in answers)
        texts = await viewers[0].chat_texts(24)
        assert sorted(texts) == sorted(f"at once {i}" for i in range(24))
    hub = engine._services.gateway.reads  # type: ignore[union-attr]
    if per_pass:
        assert hub is not None and 1 <= hub.most_woken <= per_pass
    else:
        assert hub is None


async def test_a_room_written_two_viewers_per_pass_delivers_everything_in_order(
    start_engine: StartEngine, room: str
) -> None:
    """`fanout_members_per_pass` 2 with 7 viewers: every frame goes out over several scheduler
    passes, while the senders' reads go on; each viewer still gets every danmaku, in order, and a
    viewer who joins in the middle gets the rest after its welcome."""
    engine = await start_engine(chat_tick_ms=0, fanout_members_per_pass=2)
    url = engine.address.ws_url  # type: ignore[union-attr]
    async with AsyncExitStack() as stack:
        viewers = [await stack.enter_async_context(viewer(url, engine.mint_token(f"v{i}", room)))
                   for i in range(6)]  # fmt: skip
        sender = viewers[0]
        for i in range(10):
            await sender.send(type="danmaku", text=f"paced {i}", rid=i)
        late = await stack.enter_async_context(viewer(url, engine.mint_token("late", room)))
        for i in range(10, 20):
            await sender.send(type="danmaku", text=f"paced {i}", rid=i)
        for v in viewers:
            assert await v.chat_texts(20) == [f"paced {i}" for i in range(20)]
        # the late viewer: every danmaku after its welcome position, once, in order, no gap
        start = late.welcome["seq"]  # type: ignore[attr-defined]
        texts: list[str] = []
        seqs: list[int] = []
        with trio.fail_after(10):
            while not texts or texts[-1] != "paced 19":
                frame = await late.recv_type("chat")
                seqs.append(frame["seq"])
                texts += [m["text"] for m in frame["msgs"]]
        assert all(seq > start for seq in seqs) and seqs == sorted(set(seqs))
        first = int(texts[0].split()[1])
        assert texts == [f"paced {i}" for i in range(first, 20)]
        assert first <= 10  # it missed none sent after it joined


async def test_joins_beyond_max_concurrent_joins_wait_their_turn_and_all_get_in(
    start_engine: StartEngine, room: str
) -> None:
    """One join slot: a silent socket holds it until its handshake times out (1 s), and a
    viewer behind it gets its welcome only then; twelve viewers at once all get in, in turn."""
    engine = await start_engine(max_concurrent_joins=1, handshake_timeout_s=1.0)
    url = engine.address.ws_url  # type: ignore[union-attr]
    port = engine.address.ws_port  # type: ignore[union-attr]
    silent = await trio.open_tcp_stream("127.0.0.1", port)  # connects, never sends a request
    await trio.sleep(0.1)  # it has the slot
    started = trio.current_time()
    async with viewer(url, engine.mint_token("after", room)):
        waited = trio.current_time() - started
    assert waited >= 0.8  # it could not join while the slot was held
    await silent.aclose()
    welcomed: list[str] = []
    all_in = trio.Event()

    async def join(i: int) -> None:
        async with viewer(url, engine.mint_token(f"s{i}", room)) as v:
            welcomed.append(v.welcome["user"])  # type: ignore[attr-defined]
            if len(welcomed) == 12:
                all_in.set()
            await all_in.wait()  # connected together, not one after another

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(join, i)
    assert sorted(welcomed) == sorted(f"s{i}" for i in range(12))
