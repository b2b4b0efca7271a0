"""Behaviour features of one room on this node, measured from what its viewers do: joins and
open connections per IP and device, bursts of joins, the same text from many accounts, the
regularity of a user's timing, like bursts. Pure: times are passed in (seconds, monotonic), and
each `on_*` method returns the features `bots.assess` scores.

Memory is bounded and small per connection (a few hundred bytes; reviewed like the connection
object): counters rather than lists where a count is all a rule needs, a user's timing is a few
timestamps kept only once it acts, the text clusters keep at most MAX_TEXTS keys, and `prune`
forgets users with no connection who went quiet.
"""

from __future__ import annotations

import itertools
import math
import statistics
import unicodedata
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

JOIN_WINDOW_S: Final = 10.0
TEXT_WINDOW_S: Final = 60.0
LIKE_WINDOW_S: Final = 5
TIMING_SAMPLES: Final = 16  # intervals
TIMING_TRIM: Final = 2  # the longest and shortest few left out (late messages, not the sender)
MIN_MEAN_INTERVAL_S: Final = 0.5  # faster than this, regularity is a client's batching timer
MIN_TEXT_LETTERS: Final = 10
MAX_TEXTS: Final = 5000
IDLE_USER_S: Final = 120.0

Features = dict[str, float]


def text_key(text: str) -> str | None:
    """The key under which near-identical texts collide: letters only (case, width, digits,
    spaces, punctuation and emoji dropped), or None when too short to mean anything ("666")."""
    letters = [
        ch
        for ch in unicodedata.normalize("NFKC", text).casefold()
        if unicodedata.category(ch)[0] == "L"
    ]
    return "".join(letters) if len(letters) >= MIN_TEXT_LETTERS else None


def variation(times: Sequence[float]) -> float | None:
    """stddev/mean of the last TIMING_SAMPLES intervals between `times`, leaving out the
    TIMING_TRIM longest and shortest (a late message makes one long and one short interval: the
    network's doing, not the sender's), if there are enough of them and they are slow enough to
    be deliberate; else None."""
    if len(times) <= TIMING_SAMPLES:
        return None
    samples = list(times)[-(TIMING_SAMPLES + 1) :]
    intervals = sorted(b - a for a, b in itertools.pairwise(samples))
    intervals = intervals[TIMING_TRIM : len(intervals) - TIMING_TRIM]
    mean = statistics.fmean(intervals)
    if mean < MIN_MEAN_INTERVAL_S:
        return None
    return statistics.pstdev(intervals) / mean


class UserBehaviour:
    """One user's recent behaviour in a room. Compact: what a silent viewer never does costs it
    nothing (the timing arrays and the like ring exist once it sends)."""

    __slots__ = ("conns", "danmaku_times", "fired", "last", "like_count", "like_ring",
                 "like_same", "like_sec", "like_times")  # fmt: skip

    def __init__(self) -> None:
        self.conns = 0
        self.last = 0.0
        self.danmaku_times: array[float] | None = None
        self.like_times: array[float] | None = None
        self.like_ring: array[int] | None = None  # likes per second, the last LIKE_WINDOW_S
        self.like_sec = 0  # the second the ring's newest slot is for
        self.like_count = 0  # the count of its last like message ...
        self.like_same = 0  # ... and how many in a row carried that count
        self.fired: dict[str, float] | None = None  # rule -> when it last fired (log once)


def _push(times: array[float] | None, now: float) -> array[float]:
    if times is None:
        times = array("d")
    times.append(now)
    if len(times) > TIMING_SAMPLES + 1:
        del times[0]
    return times


class Member(Protocol):
    """A connection as `related` sees it (the guard's Visitor)."""

    user: str
    ip: str
    device: str | None
    joined: float


class RoomBehaviour:
    def __init__(self) -> None:
        self.users: dict[str, UserBehaviour] = {}
        self._joins: dict[str, tuple[int, int, int]] = {}  # ip -> (bucket, previous, current)
        self._conns: dict[str, int] = {}  # "ip:<ip>" / "device:<id>" -> open connections
        self._texts: OrderedDict[str, dict[str, float]] = OrderedDict()  # key -> user -> time

    def user(self, user: str, now: float) -> UserBehaviour:
        behaviour = self.users.get(user)
        if behaviour is None:
            behaviour = self.users[user] = UserBehaviour()
        behaviour.last = now
        return behaviour

    # --- joins and connections -------------------------------------------------------------

    def on_join(self, user: str, ip: str, device: str | None, now: float) -> Features:
        self.user(user, now).conns += 1
        features: Features = {"join_burst": self._count_join(ip, now)}
        features["conns_per_ip"] = self._open("ip:" + ip, 1)
        if device is not None:
            features["conns_per_device"] = self._open("device:" + device, 1)
        return features

    def _count_join(self, ip: str, now: float) -> int:
        """Joins from `ip` in about the last JOIN_WINDOW_S: two fixed windows, the previous one
        weighted by how much of it still falls in the sliding one."""
        bucket = int(now // JOIN_WINDOW_S)
        was, previous, current = self._joins.get(ip, (bucket, 0, 0))
        if bucket != was:
            previous, current = (current if bucket == was + 1 else 0), 0
        current += 1
        self._joins[ip] = (bucket, previous, current)
        overlap = 1.0 - (now - bucket * JOIN_WINDOW_S) / JOIN_WINDOW_S
        return current + math.floor(previous * overlap)

    def _open(self, key: str, delta: int) -> int:
        count = self._conns.get(key, 0) + delta
        if count > 0:
            self._conns[key] = count
        else:
            self._conns.pop(key, None)
        return count

    def on_leave(self, user: str, ip: str, device: str | None, now: float) -> None:
        behaviour = self.users.get(user)
        if behaviour is not None:
            behaviour.conns = max(0, behaviour.conns - 1)
            behaviour.last = now
        self._open("ip:" + ip, -1)
        if device is not None:
            self._open("device:" + device, -1)

    # --- messages ------------------------------------------------------------------------

    def on_danmaku(self, user: str, key: str | None, now: float) -> Features:
        behaviour = self.user(user, now)
        behaviour.danmaku_times = _push(behaviour.danmaku_times, now)
        features: Features = {}
        cv = variation(behaviour.danmaku_times)
        if cv is not None:
            features["regular_timing"] = cv
        if key is not None:
            senders = self._texts.pop(key, None) or {}
            senders = {u: t for u, t in senders.items() if t >= now - TEXT_WINDOW_S}
            senders[user] = now
            self._texts[key] = senders  # most recent last
            while len(self._texts) > MAX_TEXTS:
                self._texts.popitem(last=False)
            features["duplicate_text"] = len(senders)
        return features

    def on_like(self, user: str, count: int, now: float) -> Features:
        behaviour = self.user(user, now)
        behaviour.like_times = _push(behaviour.like_times, now)
        ring, sec = behaviour.like_ring, int(now)
        if ring is None:
            ring = behaviour.like_ring = array("q", bytes(8 * LIKE_WINDOW_S))
            behaviour.like_sec = sec
        for _ in range(min(sec - behaviour.like_sec, LIKE_WINDOW_S)):  # seconds gone by
            behaviour.like_sec += 1
            ring[behaviour.like_sec % LIKE_WINDOW_S] = 0
        behaviour.like_sec = max(behaviour.like_sec, sec)
        ring[sec % LIKE_WINDOW_S] += count
        features: Features = {"like_burst": sum(ring)}
        if count == behaviour.like_count:
            behaviour.like_same += 1
        else:
            behaviour.like_count, behaviour.like_same = count, 1
        # a like timer is regular in a person's client too (it batches the taps); what a person
        # does not do is tap the same number of times in every batch
        if behaviour.like_same > TIMING_SAMPLES:
            cv = variation(behaviour.like_times)
            if cv is not None:
                features["regular_timing"] = cv
        return features

    # --- who else a rule is about ------------------------------------------------------------

    def related(
        self,
        rule: str,
        user: str,
        key: str | None,
        now: float,
        members: Iterable[Member],
        ip: str,
        device: str | None,
    ) -> set[str]:
        """The accounts a cluster rule's action applies to (this node's view): the senders of
        the text, or the connections of the IP or device (`members`: the room's here)."""
        if rule == "duplicate_text" and key is not None:
            return {u for u, t in self._texts.get(key, {}).items() if t >= now - TEXT_WINDOW_S}
        if rule in ("conns_per_ip", "join_burst"):
            since = now - 2 * JOIN_WINDOW_S if rule == "join_burst" else -math.inf
            return {m.user for m in members if m.ip == ip and m.joined >= since}
        if rule == "conns_per_device" and device is not None:
            return {m.user for m in members if m.device == device}
        return {user}

    def first_time(self, user: str, rule: str, now: float, cooldown_s: float) -> bool:
        """True when `rule` has not fired for `user` within `cooldown_s` (log it once)."""
        behaviour = self.user(user, now)
        if behaviour.fired is None:
            behaviour.fired = {}
        last = behaviour.fired.get(rule)
        if last is not None and now - last < cooldown_s:
            return False
        behaviour.fired[rule] = now
        return True

    def prune(self, now: float) -> None:
        for user, behaviour in list(self.users.items()):
            if not behaviour.conns and now - behaviour.last > IDLE_USER_S:
                del self.users[user]
        bucket = int(now // JOIN_WINDOW_S)
        for ip, (was, _, _) in list(self._joins.items()):
            if was < bucket - 1:
                del self._joins[ip]
        while self._texts:
            key, senders = next(iter(self._texts.items()))
            if max(senders.values(), default=0.0) >= now - TEXT_WINDOW_S:
                break
            del self._texts[key]
