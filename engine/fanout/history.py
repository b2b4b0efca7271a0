"""A room's recent messages on this node, for resumes and gap fills.

Every message a node delivers passes through here, so a viewer who reconnects within the last
`size` messages is served from memory; older ranges are read from the Redis history once and kept,
so a storm of thousands of viewers resuming the same room costs one read, not one per viewer.
Each message is also kept as one encoded frame per codec (built on first use), so a resume is a
join of ready bytes, not an encode per viewer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import msgpack

from engine.features.chat import chat_items
from engine.protocol import server
from engine.protocol.codec import Codec
from engine.protocol.wsframe import encode_frame


def message_frame(message: dict[str, Any], seq: int) -> dict[str, Any] | None:
    """The server message one bus message becomes on its own (resume replays them one by one)."""
    kind = message.get("k")
    if kind == "chat":
        return server.chat([{**item, "seq": seq} for item in chat_items(message)], seq=seq)
    if kind == "likes":
        return server.likes(int(message["n"]), seq=seq)
    if kind == "popup":
        return server.popup(message["m"], seq=seq)
    if kind == "pinned":
        return server.pinned(message["m"], seq=seq)
    if kind == "phrases":
        return server.phrases(message["m"] or [], seq=seq)
    if kind == "counter":  # e.g. a flash sale's stock; clients keep the highest `ver`
        return {**message["m"], "seq": seq}
    return None  # not shown to viewers


class RoomHistory:
    __slots__ = ("_frames", "_messages", "size")

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._messages: OrderedDict[int, bytes] = OrderedDict()  # seq -> bus payload, ascending
        self._frames: dict[Codec, dict[int, bytes]] = {}

    @property
    def first(self) -> int | None:
        return next(iter(self._messages), None)

    def add(self, seq: int, payload: bytes) -> None:
        """A message just delivered live (seqs arrive in order)."""
        self._messages[seq] = payload
        if len(self._messages) > self.size:  # one out per one in: older ones read for a
            old, _ = self._messages.popitem(last=False)  # resume storm fade out gradually
            for frames in self._frames.values():
                frames.pop(old, None)

    def prepend(self, entries: Iterable[tuple[int, bytes]]) -> None:
        """Older messages read from Redis (kept beyond `size` until live traffic pushes them out:
        the point is to serve the storm that asked for them). Only a run that joins the memory
        without a gap is kept: live traffic may have pushed the oldest ones out during the read,
        and the memory must stay one contiguous run of seqs."""
        older = sorted(entries)
        first = self.first
        if not older or (first is not None and older[-1][0] + 1 < first):
            return
        merged = OrderedDict(older)
        merged.update(self._messages)
        self._messages = merged

    def covers(self, after: int, upto: int) -> bool:
        """Whether (after, upto] is here, every seq of it (the memory is one contiguous run:
        `add` takes seqs in order, `prepend` keeps only a run that joins it)."""
        if upto <= after:
            return True
        first = self.first
        return first is not None and first <= after + 1 and upto in self._messages

    def missing_before(self) -> int:
        """Seqs below this one are not here."""
        return self.first or 0

    def replay(self, after: int, upto: int, codec: Codec) -> bytes:
        """Frames for (after, upto], one per message, concatenated (requires `covers`)."""
        cache = self._frames.setdefault(codec, {})
        parts = []
        for seq in range(after + 1, upto + 1):
            frame = cache.get(seq)
            if frame is None:
                message = message_frame(msgpack.unpackb(self._messages[seq]), seq)
                frame = cache[seq] = b"" if message is None else encode_frame(codec, message)
            parts.append(frame)
        return b"".join(parts)

    @staticmethod
    def frames_of(entries: Iterable[tuple[int, bytes]], codec: Codec) -> bytes:
        """Frames for messages read from Redis, not kept (the rare path: see RoomRegistry)."""
        parts = []
        for seq, payload in entries:
            message = message_frame(msgpack.unpackb(payload), seq)
            if message is not None:
                parts.append(encode_frame(codec, message))
        return b"".join(parts)

    def clear(self) -> None:
        self._messages.clear()
        self._frames.clear()
