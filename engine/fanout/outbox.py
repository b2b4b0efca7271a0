"""Per-connection outbox policy, pure and I/O-free.

A connection writes frames straight to its socket while the socket takes them; the outbox only
exists while the socket is behind. It then holds whole frames (the head may be partly written)
and decides what a slow viewer loses:

* CHAT frames are dropped first, oldest first, when the queue is over its byte budget;
* COUNTER frames (like totals, online counts, pings) replace an older queued frame with the same
  key: a viewer who is behind needs the newest number, not every one;
* CRITICAL frames (popups, the viewer's own results, errors, close) are never dropped; if they
  alone overflow the budget the connection must be closed (`slow_consumer`).

A viewer that stays behind, i.e. whose oldest queued frame has waited longer than the
slow-consumer timeout, is also closed; `overdue()` tells. Because chat is dropped first, a viewer
that reads steadily but slower than the room talks keeps up with everything that matters.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class FrameKind(IntEnum):
    CHAT = 0
    COUNTER = 1
    CRITICAL = 2


class Outbox:
    """Frames waiting for a socket that is behind. Byte accounting covers unsent bytes only."""

    __slots__ = ("_frames", "_head_sent", "_max_bytes", "dropped", "queued_bytes")

    def __init__(self, max_bytes: int) -> None:
        # entries: [frame, kind, key, queued_at]; lists so a COUNTER can be replaced in place
        self._frames: deque[list[object]] = deque()
        self._head_sent = 0
        self._max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def empty(self) -> bool:
        return not self._frames

    def push_partial(self, frame: bytes, sent: int, now: float) -> None:
        """The socket took only `sent` bytes of `frame`: the rest must go out before anything."""
        self._frames.appendleft([frame, FrameKind.CRITICAL, None, now])
        self._head_sent = sent
        self.queued_bytes += len(frame) - sent

    def push_front(self, frame: bytes, now: float) -> None:
        """Queue `frame` before everything not yet started (e.g. the welcome frame)."""
        entry: list[object] = [frame, FrameKind.CRITICAL, None, now]
        if self._head_sent:
            self._frames.insert(1, entry)
        else:
            self._frames.appendleft(entry)
        self.queued_bytes += len(frame)

    def push(self, frame: bytes, kind: FrameKind, key: str | None, now: float) -> bool:
        """Queue a frame. Returns False when the viewer must be closed as a slow consumer (only
        ever for a critical frame: chat and counters that do not fit are dropped instead)."""
        size = len(frame)
        replaced = self._find(key) if kind is FrameKind.COUNTER and key is not None else None
        growth = size - (len(replaced[0]) if replaced is not None else 0)  # type: ignore[arg-type]
        if self.queued_bytes + growth > self._max_bytes:
            self._drop_chat(self.queued_bytes + growth - self._max_bytes)
            if self.queued_bytes + growth > self._max_bytes:
                if kind is FrameKind.CRITICAL:
                    return False
                self.dropped += 1
                return True
        if replaced is not None:
            replaced[0] = frame
        else:
            self._frames.append([frame, kind, key, now])
        self.queued_bytes += growth
        return True

    def push_forced(self, frame: bytes, now: float) -> None:
        """Queue a frame whatever the budget (the close frame of a connection being dropped)."""
        self._frames.append([frame, FrameKind.CRITICAL, None, now])
        self.queued_bytes += len(frame)

    def clear_droppable(self) -> None:
        """Forget every queued frame that is not critical (the connection is being closed)."""
        kept: deque[list[object]] = deque()
        for index, entry in enumerate(self._frames):
            if entry[1] is FrameKind.CRITICAL or (index == 0 and self._head_sent):
                kept.append(entry)
            else:
                self.queued_bytes -= len(entry[0]) - (self._head_sent if index == 0 else 0)  # type: ignore[arg-type]
                self.dropped += 1
        self._frames = kept

    def _find(self, key: str | None) -> list[object] | None:
        """A queued counter frame with this key that is not being written."""
        for index, entry in enumerate(self._frames):
            if entry[2] == key and not (index == 0 and self._head_sent):
                return entry
        return None

    def _drop_chat(self, need: int) -> None:
        """Drop queued chat frames, oldest first, until `need` bytes are free (never the head
        frame once it is partly written: a frame is written whole or the connection breaks)."""
        kept: deque[list[object]] = deque()
        freed = 0
        for index, entry in enumerate(self._frames):
            if freed < need and entry[1] is FrameKind.CHAT and not (index == 0 and self._head_sent):
                freed += len(entry[0])  # type: ignore[arg-type]
                self.dropped += 1
            else:
                kept.append(entry)
        self._frames = kept
        self.queued_bytes -= freed

    def pending(self, max_buffers: int = 64) -> list[memoryview]:
        """The unsent bytes, as buffers for one vectored write (head first)."""
        out: list[memoryview] = []
        for index, entry in enumerate(self._frames):
            if index == max_buffers:
                break
            view = memoryview(entry[0])  # type: ignore[arg-type]
            out.append(view[self._head_sent :] if index == 0 else view)
        return out

    def consumed(self, sent: int) -> None:
        """The socket took `sent` bytes of what `pending()` returned."""
        self.queued_bytes -= sent
        frames = self._frames
        while sent and frames:
            left = len(frames[0][0]) - self._head_sent  # type: ignore[arg-type]
            if sent >= left:
                sent -= left
                frames.popleft()
                self._head_sent = 0
            else:
                self._head_sent += sent
                sent = 0

    def deadline(self, timeout: float) -> float:
        """When the oldest queued frame will have waited `timeout` (inf when empty)."""
        if not self._frames:
            return float("inf")
        return self._frames[0][3] + timeout  # type: ignore[operator]

    def overdue(self, now: float, timeout: float) -> bool:
        return now > self.deadline(timeout)
