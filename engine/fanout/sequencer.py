"""Orders one room's bus messages on one node: each seq exactly once, in order, per epoch.
Pure and I/O-free; the room's I/O side performs what it asks for (fetch a gap from the history,
resync its viewers).

Redis pub/sub delivers a room's messages in publish order, but a subscriber can miss some (its
connection dropped) or see some twice (re-subscribing overlaps a history read). Every message
carries (epoch, seq); seqs of an epoch are 1, 2, 3, ... without gaps (lib/room_publish.lua).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Step(Enum):
    DELIVER = "deliver"  # hand `messages` to the broadcaster, in this order
    FILL = "fill"  # read (after, upto] from the history, then call `filled`
    RESYNC = "resync"  # the epoch changed: viewers need a fresh snapshot; then `restart`
    WAIT = "wait"  # nothing to do now (held until a fill or resync completes)


@dataclass(frozen=True, slots=True)
class Verdict:
    step: Step
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    after: int = 0
    upto: int = 0
    epoch: str | None = None


_WAIT = Verdict(Step.WAIT)


class Sequencer:
    __slots__ = ("busy", "epoch", "held", "last")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.last = 0  # every seq <= last of this epoch has been delivered
        self.held: dict[int, tuple[str, bytes]] = {}  # arrived early, waiting for a fill/resync
        self.busy = False  # a fill or resync is in flight

    @property
    def ready(self) -> bool:
        return self.epoch is not None

    def start(self, epoch: str, last: int) -> Verdict:
        """Begin at (epoch, last): everything up to `last` is known to the viewers already."""
        self.epoch, self.last, self.busy = epoch, last, False
        return self._drain()

    def offer(self, epoch: str, seq: int, payload: bytes) -> Verdict:
        if self.epoch is None or self.busy:
            self.held[seq] = (epoch, payload)
            return _WAIT
        if epoch != self.epoch:
            self.held = {seq: (epoch, payload)}
            self.busy = True
            return Verdict(Step.RESYNC, epoch=epoch)
        if seq <= self.last:
            return _WAIT  # a duplicate
        if seq == self.last + 1:
            self.last = seq
            return Verdict(Step.DELIVER, [(seq, payload)])
        self.held[seq] = (epoch, payload)
        self.busy = True
        return Verdict(Step.FILL, after=self.last, upto=seq - 1)

    def filled(self, messages: list[tuple[int, bytes]], upto: int) -> Verdict:
        """The history's answer to a FILL up to `upto`: deliverable messages, or RESYNC if it
        lacks some (trimmed away: too old, or the history is gone)."""
        out: list[tuple[int, bytes]] = []
        for seq, payload in messages:
            if seq == self.last + 1:
                self.last = seq
                out.append((seq, payload))
        if self.last < upto:
            self.busy = True
            return Verdict(Step.RESYNC, messages=out, epoch=self.epoch)
        self.busy = False
        rest = self._drain()
        return Verdict(rest.step, out + rest.messages, rest.after, rest.upto, rest.epoch)

    def restart(self, epoch: str, last: int) -> Verdict:
        """After a RESYNC: the viewers now hold the snapshot of (epoch, last)."""
        held, self.held = self.held, {}
        self.epoch, self.last, self.busy = epoch, last, False
        self.held = {s: v for s, v in held.items() if v[0] == epoch and s > last}
        return self._drain()

    def _drain(self) -> Verdict:
        """Deliver held messages that are now in order; FILL if a gap remains before them."""
        out: list[tuple[int, bytes]] = []
        for seq in sorted(self.held):
            epoch, payload = self.held[seq]
            if epoch != self.epoch or seq <= self.last:
                del self.held[seq]
            elif seq == self.last + 1:
                del self.held[seq]
                self.last = seq
                out.append((seq, payload))
            else:
                self.busy = True
                return Verdict(Step.FILL, out, after=self.last, upto=seq - 1)
        return Verdict(Step.DELIVER, out) if out else _WAIT
