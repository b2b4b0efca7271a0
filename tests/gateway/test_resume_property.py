"""Property: for random interleavings of publishes, disconnects and reconnects (to either of two
nodes), every viewer's delivered sequence is gap-free and duplicate-free, or the gap is exactly
at an explicit `resync`."""

from __future__ import annotations

import itertools
import tempfile
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed

from engine import Engine
from tests.support import engine_config, viewer

pytestmark = pytest.mark.integration

ROOMS = itertools.count()

actions = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 6)),
        st.tuples(st.just("popup"), st.just(0)),
        st.tuples(st.just("drop"), st.integers(0, 2)),
        st.tuples(st.just("reconnect"), st.integers(0, 5)),  # viewer = n % 3, node = n // 3
        st.tuples(st.just("pause"), st.just(0)),
    ),
    min_size=3,
    max_size=14,
)


class Life:
    """One viewer over its connections: what it received, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames: list[dict[str, Any]] = []
        self.scope: trio.CancelScope | None = None
        self.done = trio.Event()
        self.last_seq = 0
        self.epoch = ""

    async def run(
        self, node: Engine, room: str, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One connection, in a task of its own, until cancelled or closed."""
        since = self.last_seq if self.epoch else None
        with trio.CancelScope() as self.scope:
            try:
                async with viewer(node.address.ws_url, node.mint_token(self.name, room),  # type: ignore[union-attr]
                                  since=since, epoch=self.epoch or None) as v:  # fmt: skip
                    self.frames.append(v.welcome)  # type: ignore[attr-defined]
                    self.last_seq, self.epoch = v.last_seq, v.epoch
                    task_status.started()
                    while True:
                        self.frames.append(await v.recv(timeout=60))
                        self.last_seq, self.epoch = v.last_seq, v.epoch
            except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        self.done.set()

    async def drop(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
            await self.done.wait()
            self.scope, self.done = None, trio.Event()

    def chat_seqs(self) -> list[int]:
        return [m["seq"] for f in self.frames if f["type"] == "chat" for m in f["msgs"]]

    def texts(self) -> list[str]:
        return [m["text"] for f in self.frames if f["type"] == "chat" for m in f["msgs"]]


def check(life: Life, published: list[int]) -> None:
    """Between explicit restarts (a fresh welcome, a resync), the chat seqs a viewer got are
    exactly the published ones after its starting position: no gap, no duplicate."""
    segment: list[int] = []
    start: int | None = None
    for frame in life.frames:
        restart = frame["type"] == "resync" or (
            frame["type"] == "welcome" and frame["recovery"] != "resumed"
        )
        if restart:
            verify(segment, start, published, life.name)
            segment, start = [], frame["seq"]
        elif frame["type"] == "chat":
            segment += [m["seq"] for m in frame["msgs"]]
    verify(segment, start, published, life.name)


def verify(seqs: list[int], start: int | None, published: list[int], who: str) -> None:
    assert start is not None or not seqs
    expected = [s for s in published if start is not None and s > start][: len(seqs)]
    assert seqs == expected, f"{who}: got {seqs} from {start}, expected {expected}"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=actions, history_size=st.sampled_from([3, 1000]))
async def test_property_gap_free_duplicate_free_or_explicit_resync(
    redis_url: str, script: list[tuple[str, int]], history_size: int
) -> None:
    room = f"prop-{next(ROOMS)}-{trio.current_time():.0f}"
    overrides = {"history_size": history_size, "replay_cache_size": history_size,
                 "chat_tick_ms": 10, "room_linger_s": 0.2}  # fmt: skip
    published: list[int] = []  # the seq of every chat message, as the room numbered it
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [Engine(engine_config(redis_url, tmp, **overrides)) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            for node in nodes:
                await nursery.start(node.serve)
            lives = [Life(f"v{i}") for i in range(3)]
            url = nodes[0].address.ws_url  # type: ignore[union-attr]
            async with viewer(url, nodes[0].mint_token("talker", room)) as talker:

                async def say(text: str) -> None:
                    await talker.send(type="danmaku", text=text, rid=text)
                    published.append((await talker.recv_type("result", rid=text))["data"]["seq"])

                for i, life in enumerate(lives):
                    await nursery.start(life.run, nodes[i % 2], room)
                for n, (action, arg) in enumerate(script):
                    if action == "publish":
                        for k in range(arg):
                            await say(f"m{n}.{k}")
                    elif action == "popup":
                        await nodes[1].push_popup(room, "notice", {"n": n})
                    elif action == "drop":
                        await lives[arg].drop()
                    elif action == "reconnect":
                        life = lives[arg % 3]
                        await life.drop()
                        await nursery.start(life.run, nodes[arg // 3], room)
                    else:
                        await trio.sleep(0.05)
                for life in lives:
                    if life.scope is None:
                        await nursery.start(life.run, nodes[0], room)
                await say("end")
                with trio.fail_after(20):
                    for life in lives:
                        while "end" not in life.texts():
                            await trio.sleep(0.02)
                for life in lives:
                    await life.drop()
            nursery.cancel_scope.cancel()
    for life in lives:
        check(life, published)
        assert len(life.chat_seqs()) == len(set(life.chat_seqs())), f"{life.name}: a duplicate"
