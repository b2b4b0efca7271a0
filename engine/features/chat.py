"""Danmaku, anchor replies, quick phrases and the pinned message.

Danmaku are published by group commit: those a node takes in for one room while the previous
publish of that room is under way (or within `window_s`) go to Redis in one script call as one
room message (`{"k": "chat", "ms": [...]}`) with one seq, so a hot room costs a Redis call, a
history entry and a bus message per batch rather than per danmaku. One call in flight per room
keeps a room's danmaku in the order the node took them in.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from engine.errors import ErrorCode, ProtocolError, StoreUnavailable
from engine.features.batching import Done, GroupCommit, Overloaded
from engine.identity import Identity
from engine.protocol import server
from engine.protocol.client import Danmaku, clean_text
from engine.store.store import Store, now_ms

MAX_PHRASES = 50
MAX_BATCH = 100  # danmaku in one published message
MAX_PENDING = 20_000  # danmaku queued on a node before it answers `unavailable`

log = structlog.get_logger("engine.chat")

Listener = Callable[[str, Identity, dict[str, Any]], Awaitable[None]]


def chat_item(
    identity: Identity, message: Danmaku, phrases: dict[int, str], msg_id: str, ts: int
) -> dict[str, Any]:
    """The wire shape of one danmaku, or ProtocolError when the sender may not send it."""
    if message.reply_to is not None and not identity.role.is_staff:
        raise ProtocolError("only the anchor can reply to a viewer", code=ErrorCode.FORBIDDEN)
    if message.phrase is not None:
        text = phrases.get(message.phrase)
        if text is None:
            raise ProtocolError(f"no quick phrase {message.phrase}", code=ErrorCode.UNKNOWN_PHRASE)
    else:
        assert message.text is not None  # validated by the protocol
        text = message.text
    return server.chat_item(
        msg_id=msg_id,
        user=identity.user,
        name=identity.display_name,
        text=text,
        ts=ts,
        role=identity.role.value,
        reply_to=None if message.reply_to is None else {"user": message.reply_to},
    )


def validate_phrases(phrases: list[str], max_chars: int) -> list[dict[str, Any]]:
    if len(phrases) > MAX_PHRASES:
        raise ValueError(f"at most {MAX_PHRASES} quick phrases")
    return [{"id": i, "text": clean_text(p, "phrase", max_chars)} for i, p in enumerate(phrases)]


def chat_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The danmaku of a `chat` room message: a published batch, or one item."""
    items = message.get("ms")
    if isinstance(items, list):
        return items
    return [message["m"]]


class Chat:
    def __init__(
        self,
        store: Store,
        node_tag: str,
        max_text_chars: int,
        *,
        window_s: float = 0.0,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._store = store
        self._node_tag = node_tag
        self._ids = itertools.count(1)
        self._max_text = max_text_chars
        self._publisher: GroupCommit[str, dict[str, Any], int] = GroupCommit(
            self._publish_batch, window_s=window_s, max_batch=max_batch, in_flight=1,
            max_pending=MAX_PENDING,
        )  # fmt: skip
        self._nursery: trio.Nursery | None = None
        # danmaku sent per room since the live-number pulse last took them (features/pulse.py)
        self.sent: dict[str, int] = {}
        # called with (room, sender, item) after a danmaku went out (lottery keyword entries);
        # a listener must not raise
        self.listeners: list[Listener] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._publisher.run)
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def take_sent(self) -> dict[str, int]:
        sent, self.sent = self.sent, {}
        return sent

    def next_id(self) -> str:
        return f"{self._node_tag}.{next(self._ids):x}"

    async def _publish_batch(self, room: str, items: list[dict[str, Any]]) -> list[int]:
        published = await self._store.publish(room, {"k": "chat", "ms": items})
        self.sent[room] = self.sent.get(room, 0) + len(items)
        return [published.seq] * len(items)

    def send_nowait(
        self,
        room: str,
        identity: Identity,
        message: Danmaku,
        phrases: dict[int, str],
        done: Done[int],
    ) -> dict[str, Any]:
        """Queue a danmaku for publishing and return its item; `done(seq, None)` once it is
        out, or `done(None, error)` (StoreUnavailable). Raises ProtocolError when the sender
        may not send it, StoreUnavailable when the node queues too many already."""
        item = chat_item(identity, message, phrases, self.next_id(), now_ms())

        def published(seq: int | None, error: Exception | None) -> None:
            if error is None and self.listeners and self._nursery is not None:
                for listener in self.listeners:
                    self._nursery.start_soon(listener, room, identity, item)
            done(seq, error)

        try:
            self._publisher.submit_nowait(room, item, published)
        except Overloaded:
            raise StoreUnavailable("this node has too many danmaku waiting; try again") from None
        return item

    async def send(
        self, room: str, identity: Identity, message: Danmaku, phrases: dict[int, str]
    ) -> dict[str, Any]:
        """Publish a danmaku and wait until it is out: the item with its seq."""
        out: list[Any] = []
        event = trio.Event()

        def done(seq: int | None, error: Exception | None) -> None:
            out.extend((seq, error))
            event.set()

        item = self.send_nowait(room, identity, message, phrases, done)
        await event.wait()
        if out[1] is not None:
            raise out[1]
        return {**item, "seq": out[0]}

    async def pin(self, room: str, text: str, by: Identity | None = None) -> dict[str, Any]:
        """Pin a message; viewers see it now and every later joiner gets it in its welcome."""
        item = {
            "id": self.next_id(),
            "text": clean_text(text, "text", self._max_text),
            "by": by.user if by else None,
            "ts": now_ms(),
        }
        await self._store.set_state(room, "pinned", item, {"k": "pinned", "m": item})
        return item

    async def unpin(self, room: str) -> None:
        await self._store.set_state(room, "pinned", None, {"k": "pinned", "m": None})

    async def set_phrases(self, room: str, phrases: list[str]) -> list[dict[str, Any]]:
        """Replace the room's quick phrases (ids are their positions)."""
        items = validate_phrases(phrases, self._max_text)
        await self._store.set_state(room, "phrases", items, {"k": "phrases", "m": items})
        return items
