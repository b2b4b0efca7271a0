"""Per room and node: what goes out to the room's local viewers, and when. Pure and I/O-free.

* chat is coalesced into one frame per tick; a frame goes out early when it reaches its message
  or byte cap (as goim merges a room's pushes by count or timer); a tick of 0 sends each chat
  message in a frame of its own at once;
* likes become one counter update per tick, carrying the room total (the largest total seen:
  totals only grow, so nodes that publish them in any order agree);
* the online count is a counter too;
* popups and pinned messages go out at once, never waiting for the tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.fanout.outbox import FrameKind
from engine.protocol import server


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One server message for every local viewer of a room, with its drop policy."""

    message: dict[str, Any]
    kind: FrameKind
    key: str | None = None


class RoomBroadcaster:
    __slots__ = (
        "_chat",
        "_chat_bytes",
        "_likes",
        "_likes_sent",
        "_max_bytes",
        "_max_messages",
        "_online",
        "_online_sent",
        "immediate_chat",
    )

    def __init__(self, *, tick_s: float, max_messages: int, max_bytes: int) -> None:
        self.immediate_chat = tick_s <= 0
        self._max_messages = max(1, max_messages)
        self._max_bytes = max_bytes
        self._chat: list[dict[str, Any]] = []
        self._chat_bytes = 0
        self._likes = 0
        self._likes_sent = 0
        self._online = -1
        self._online_sent = -1

    @property
    def likes(self) -> int:
        return self._likes

    def add_chat(self, item: dict[str, Any], size: int) -> Outgoing | None:
        """Queue one chat item (`size`: its encoded size, near enough). Returns a frame to send
        now when batching is off or the batch is full, else None (it goes at the next tick)."""
        self._chat.append(item)
        self._chat_bytes += size
        if (
            self.immediate_chat
            or len(self._chat) >= self._max_messages
            or self._chat_bytes >= self._max_bytes
        ):
            return self._take_chat()
        return None

    def _take_chat(self) -> Outgoing:
        batch, self._chat, self._chat_bytes = self._chat, [], 0
        return Outgoing(server.chat(batch), FrameKind.CHAT)

    def set_likes(self, total: int) -> None:
        if total > self._likes:
            self._likes = total

    def seed_likes(self, total: int) -> None:
        """The total read from Redis when the room opened on this node: nothing to announce."""
        self.set_likes(total)
        self._likes_sent = max(self._likes_sent, total)

    def set_online(self, count: int) -> None:
        self._online = count

    def popup(self, item: dict[str, Any]) -> Outgoing:
        return Outgoing(server.popup(item), FrameKind.CRITICAL)

    def pinned(self, item: dict[str, Any] | None) -> Outgoing:
        return Outgoing(server.pinned(item), FrameKind.CRITICAL)

    def tick(self) -> list[Outgoing]:
        """Everything that waits for the tick: the chat batch and changed counters."""
        out: list[Outgoing] = []
        if self._chat:
            out.append(self._take_chat())
        if self._likes != self._likes_sent:
            self._likes_sent = self._likes
            out.append(Outgoing(server.likes(self._likes), FrameKind.COUNTER, "likes"))
        if self._online != self._online_sent and self._online >= 0:
            self._online_sent = self._online
            out.append(Outgoing(server.online(self._online), FrameKind.COUNTER, "online"))
        return out
