"""Danmaku group commit (engine/features/chat.py) against a real Redis: danmaku queued for a room
while a publish is under way leave together as one room message with one seq, in the order they
were taken in, and the history replays them as one chat frame."""

from __future__ import annotations

import msgpack
import pytest
import trio

from engine.errors import StoreUnavailable
from engine.fanout.history import message_frame
from engine.features.chat import Chat, chat_items
from engine.identity import Identity, Role
from engine.protocol.client import Danmaku
from engine.store.store import Store, open_redis

pytestmark = pytest.mark.integration


def viewer(user: str) -> Identity:
    return Identity(user=user, room="r", role=Role.VIEWER, expires_at=2**40)


async def test_danmaku_in_one_window_are_one_message_in_order(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis, trio.open_nursery() as nursery:
        store = Store(redis)
        chat = Chat(store, "n1", 200, window_s=0.5)  # long: every send below falls in it
        await nursery.start(chat.run)
        answers: list[tuple[int | None, Exception | None]] = []
        items = [
            chat.send_nowait(room, viewer(f"u{i % 3}"), Danmaku(text=f"m{i}"), {},
                             lambda seq, error: answers.append((seq, error)))
            for i in range(7)
        ]  # fmt: skip
        with trio.fail_after(10):
            while len(answers) < 7:
                await trio.sleep(0.01)
        seqs = {seq for seq, error in answers if error is None}
        assert len(seqs) == 1 and all(error is None for _, error in answers)
        epoch, history = await store.history(room, 0, 10**6)
        assert epoch and [seq for seq, _ in history] == sorted(seqs)
        message = msgpack.unpackb(history[0][1])
        assert [item["text"] for item in chat_items(message)] == [f"m{i}" for i in range(7)]
        assert [item["id"] for item in chat_items(message)] == [item["id"] for item in items]
        frame = message_frame(message, history[0][0])
        assert frame is not None and [m["text"] for m in frame["msgs"]] == [
            f"m{i}" for i in range(7)
        ]
        assert chat.take_sent() == {room: 7}
        nursery.cancel_scope.cancel()


async def test_batches_keep_the_order_of_intake_across_calls(redis_url: str, room: str) -> None:
    async with open_redis(redis_url) as redis, trio.open_nursery() as nursery:
        store = Store(redis)
        chat = Chat(store, "n1", 200, window_s=0.0)  # batches form only behind a publish
        await nursery.start(chat.run)
        sent = await chat.send(room, viewer("a"), Danmaku(text="first"), {})
        async with trio.open_nursery() as senders:
            for i in range(30):
                senders.start_soon(chat.send, room, viewer("b"), Danmaku(text=f"t{i}"), {})
                await trio.sleep(0)
        _, history = await store.history(room, 0, 10**6)
        texts = [item["text"] for _, p in history for item in chat_items(msgpack.unpackb(p))]
        assert texts == ["first", *[f"t{i}" for i in range(30)]]
        assert history[0][0] == sent["seq"]
        nursery.cancel_scope.cancel()


async def test_a_send_without_redis_is_refused_not_lost_silently(room: str) -> None:
    async with open_redis("redis://127.0.0.1:1/0") as redis, trio.open_nursery() as nursery:
        chat = Chat(Store(redis), "n1", 200, window_s=0.0)
        await nursery.start(chat.run)
        with pytest.raises(StoreUnavailable):
            await chat.send(room, viewer("a"), Danmaku(text="lost?"), {})
        assert chat.take_sent() == {}
        nursery.cancel_scope.cancel()


async def test_without_batching_each_danmaku_has_its_own_seq(redis_url: str, room: str) -> None:
    """chat_tick_ms 0 promises a frame per danmaku: the node publishes them one by one."""
    async with open_redis(redis_url) as redis, trio.open_nursery() as nursery:
        store = Store(redis)
        chat = Chat(store, "n1", 200, window_s=0.0, max_batch=1)
        await nursery.start(chat.run)
        async with trio.open_nursery() as senders:
            for i in range(10):
                senders.start_soon(chat.send, room, viewer("b"), Danmaku(text=f"t{i}"), {})
        _, history = await store.history(room, 0, 10**6)
        assert [len(chat_items(msgpack.unpackb(p))) for _, p in history] == [1] * 10
        nursery.cancel_scope.cancel()
