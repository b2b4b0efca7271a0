"""Per room and node: what goes out to the room's local viewers, and when. Pure and I/O-free.

* chat is coalesced into one frame per tick; a frame goes out early when it reaches its message
  or byte cap (as goim merges a room's pushes by count or timer); a tick of 0 sends each chat
  message in a frame of its own at once;
* likes become one counter update per tick, carrying the room total (the largest total seen:
  totals only grow, so nodes that publish them in any order agree);
* the online count is a counter too, and so is each flash sale's stock (`counter`: the newest
  version wins, once per tick);
* popups, pinned messages and quick-phrase changes go out at once, never waiting for the tick.

Order and positions: every room message has a seq. Content (chat, popups, pinned, phrases) leaves
in seq order (an immediate frame first flushes what is pending); frames carry `seq`, the position
the viewer has reached with them (see `tick`); `sent_seq` is the latest, where a resuming
viewer's replay must end.
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
        "_counters",
        "_counters_due",
        "_likes",
        "_likes_sent",
        "_max_bytes",
        "_max_messages",
        "_online",
        "_online_sent",
        "content_seq",
        "immediate_chat",
        "pending_seq",
        "sent_seq",
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
        self._counters: dict[str, tuple[int, dict[str, Any]]] = {}  # key -> (version, message)
        self._counters_due: dict[str, None] = {}  # keys whose newest version is not sent yet
        self.pending_seq = 0  # the highest seq taken in
        self.content_seq = 0  # the highest seq of content taken in (not a counter's)
        self.sent_seq = 0  # the position carried by the last frame that went out

    @property
    def likes(self) -> int:
        return self._likes

    def reset(self, seq: int) -> None:
        """Start over at `seq` (a resync): nothing pending, viewers are at `seq`."""
        self._chat, self._chat_bytes = [], 0
        self.pending_seq = self.content_seq = self.sent_seq = seq

    # --- taking messages in --------------------------------------------------------------

    def add_chat(self, item: dict[str, Any], size: int, seq: int) -> list[Outgoing]:
        """Queue one chat item (`size`: its encoded size, near enough). Returns the frames to
        send now: none until the tick, unless batching is off or the batch is full."""
        return self.add_chats([item], size, seq)

    def add_chats(self, items: list[dict[str, Any]], size: int, seq: int) -> list[Outgoing]:
        """Queue the chat items of one room message (they share `seq`, so no frame splits
        them: a frame's seq promises all of it). `size`: their encoded size, near enough."""
        for item in items:
            item["seq"] = seq
        self._chat += items
        self._chat_bytes += size
        self.pending_seq = self.content_seq = seq
        if (
            self.immediate_chat
            or len(self._chat) >= self._max_messages
            or self._chat_bytes >= self._max_bytes
        ):
            return self.tick()  # counters too: the frame's position must cover them
        return []

    def set_likes(self, total: int, seq: int | None = None) -> None:
        if total > self._likes:
            self._likes = total
        if seq is not None:
            self.pending_seq = seq

    def seed_likes(self, total: int) -> None:
        """The total read from Redis when the room opened on this node: nothing to announce."""
        self.set_likes(total)
        self._likes_sent = max(self._likes_sent, total)

    def set_online(self, count: int) -> None:
        self._online = count

    def counter(self, key: str, version: int, message: dict[str, Any], seq: int) -> None:
        """A versioned counter (a flash sale's stock): the newest version wins, whatever order
        nodes published in, and goes out once at the next tick."""
        self.pending_seq = seq
        current = self._counters.get(key)
        if current is None or version > current[0]:
            self._counters[key] = (version, message)
            self._counters_due[key] = None

    def note(self, seq: int) -> None:
        """A message viewers do not see still moves the position."""
        self.pending_seq = self.content_seq = seq

    def popup(self, item: dict[str, Any], seq: int) -> list[Outgoing]:
        return self._now(server.popup(item), seq)

    def pinned(self, item: dict[str, Any] | None, seq: int) -> list[Outgoing]:
        return self._now(server.pinned(item), seq)

    def phrases(self, items: list[dict[str, Any]], seq: int) -> list[Outgoing]:
        return self._now(server.phrases(items), seq)

    def _now(self, message: dict[str, Any], seq: int) -> list[Outgoing]:
        """An immediate frame: what is pending goes first, so frames stay in seq order."""
        out = self.tick()
        self.pending_seq = self.content_seq = seq
        return [*out, self._stamp(Outgoing(message, FrameKind.CRITICAL), seq)]

    # --- giving frames out ---------------------------------------------------------------

    def tick(self) -> list[Outgoing]:
        """Everything that waits for the tick, in this order: the online count (not a room
        message: never stamped), the chat batch, then state frames (like total, counters).

        Stamps: the chat frame carries the highest content seq it completes (every chat
        message and unseen message up to it is delivered); the last state frame carries
        everything taken in. State frames are latest-wins, so a viewer cut between frames of
        one flush resumes with no content twice and at worst one stale counter, which the next
        update fixes."""
        out: list[Outgoing] = []
        if self._online != self._online_sent and self._online >= 0:
            self._online_sent = self._online
            out.append(Outgoing(server.online(self._online), FrameKind.COUNTER, "online"))
        if self._chat:
            batch, self._chat, self._chat_bytes = self._chat, [], 0
            out.append(self._stamp(Outgoing(server.chat(batch), FrameKind.CHAT), self.content_seq))
        state: list[Outgoing] = []
        if self._likes != self._likes_sent:
            self._likes_sent = self._likes
            state.append(Outgoing(server.likes(self._likes), FrameKind.COUNTER, "likes"))
        if self._counters_due:
            for key in self._counters_due:
                state.append(Outgoing(dict(self._counters[key][1]), FrameKind.COUNTER, key))
            self._counters_due = {}
        if state:
            state[-1] = self._stamp(state[-1], self.pending_seq)
            out += state
        return out

    def _stamp(self, out: Outgoing, seq: int) -> Outgoing:
        if seq > 0 and seq >= self.sent_seq:
            out.message["seq"] = self.sent_seq = seq
        return out
