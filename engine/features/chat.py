"""Danmaku, anchor replies, quick phrases and the pinned message."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from engine.errors import ErrorCode, ProtocolError
from engine.identity import Identity
from engine.protocol import server
from engine.protocol.client import Danmaku, clean_text
from engine.store.store import Store, now_ms

MAX_PHRASES = 50


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


class Chat:
    def __init__(self, store: Store, node_tag: str, max_text_chars: int) -> None:
        self._store = store
        self._node_tag = node_tag
        self._ids = itertools.count(1)
        self._max_text = max_text_chars
        # danmaku sent per room since the live-number pulse last took them (features/pulse.py)
        self.sent: dict[str, int] = {}
        # called with (room, sender, item) after a danmaku went out (lottery keyword entries);
        # a listener must not raise
        self.listeners: list[Callable[[str, Identity, dict[str, Any]], Awaitable[None]]] = []

    def take_sent(self) -> dict[str, int]:
        sent, self.sent = self.sent, {}
        return sent

    def next_id(self) -> str:
        return f"{self._node_tag}.{next(self._ids):x}"

    async def send(
        self, room: str, identity: Identity, message: Danmaku, phrases: dict[int, str]
    ) -> dict[str, Any]:
        item = chat_item(identity, message, phrases, self.next_id(), now_ms())
        published = await self._store.publish(room, {"k": "chat", "m": item})
        self.sent[room] = self.sent.get(room, 0) + 1
        for listener in self.listeners:
            await listener(room, identity, item)
        return {**item, "seq": published.seq}

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
