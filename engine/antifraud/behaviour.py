"""Behaviour features of one room on this node, measured from what its viewers do: joins and
open connections per IP and device, bursts of joins, the same text from many accounts, the
regularity of a user's timing, like bursts. Pure: times are passed in (seconds, monotonic), and
each `on_*` method returns the features `bots.assess` scores.

Memory is bounded: windows are short, a user's history is a few timestamps, the text clusters
keep at most MAX_TEXTS keys, and `prune` forgets users with no connection who went quiet.
"""

from __future__ import annotations

import itertools
import statistics
import unicodedata
from collections import Counter, OrderedDict, deque
from typing import Final

JOIN_WINDOW_S: Final = 10.0
TEXT_WINDOW_S: Final = 60.0
LIKE_WINDOW_S: Final = 5.0
TIMING_SAMPLES: Final = 8  # intervals
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


def variation(times: deque[float]) -> float | None:
    """stddev/mean of the intervals between `times`, leaving out the longest and the shortest
    (one late message makes one long and one short interval: the network's doing, not the
    sender's), if there are enough of them and they are slow enough to be deliberate."""
    if len(times) <= TIMING_SAMPLES:
        return None
    samples = list(times)[-(TIMING_SAMPLES + 1) :]
    intervals = sorted(b - a for a, b in itertools.pairwise(samples))[1:-1]
    mean = statistics.fmean(intervals)
    if mean < MIN_MEAN_INTERVAL_S:
        return None
    return statistics.pstdev(intervals) / mean


class UserBehaviour:
    __slots__ = ("conns", "danmaku_times", "fired", "last", "like_sum", "like_times", "likes")

    def __init__(self) -> None:
        self.conns = 0
        self.last = 0.0
        self.danmaku_times: deque[float] = deque(maxlen=TIMING_SAMPLES + 1)
        self.like_times: deque[float] = deque(maxlen=TIMING_SAMPLES + 1)
        self.likes: deque[tuple[float, int]] = deque()
        self.like_sum = 0
        self.fired: dict[str, float] = {}  # rule -> when it last fired (log once per cooldown)


class RoomBehaviour:
    def __init__(self) -> None:
        self.users: dict[str, UserBehaviour] = {}
        self._joins: dict[str, deque[tuple[float, str]]] = {}  # ip -> (time, user)
        self._conns: dict[str, Counter[str]] = {}  # "ip:<ip>" / "device:<id>" -> user -> conns
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
        joins = self._joins.setdefault(ip, deque())
        joins.append((now, user))
        while joins and joins[0][0] < now - JOIN_WINDOW_S:
            joins.popleft()
        features: Features = {"join_burst": len(joins)}
        features["conns_per_ip"] = self._open("ip:" + ip, user)
        if device is not None:
            features["conns_per_device"] = self._open("device:" + device, user)
        return features

    def _open(self, key: str, user: str) -> int:
        counter = self._conns.setdefault(key, Counter())
        counter[user] += 1
        return counter.total()

    def on_leave(self, user: str, ip: str, device: str | None, now: float) -> None:
        behaviour = self.users.get(user)
        if behaviour is not None:
            behaviour.conns = max(0, behaviour.conns - 1)
            behaviour.last = now
        for key in ("ip:" + ip, None if device is None else "device:" + device):
            counter = self._conns.get(key) if key else None
            if counter is not None:
                counter[user] -= 1
                if counter[user] <= 0:
                    del counter[user]
                if not counter:
                    del self._conns[key]  # type: ignore[arg-type]

    # --- messages ------------------------------------------------------------------------

    def on_danmaku(self, user: str, key: str | None, now: float) -> Features:
        behaviour = self.user(user, now)
        behaviour.danmaku_times.append(now)
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
        behaviour.like_times.append(now)
        likes = behaviour.likes
        likes.append((now, count))
        behaviour.like_sum += count
        while likes and likes[0][0] < now - LIKE_WINDOW_S:
            behaviour.like_sum -= likes.popleft()[1]
        features: Features = {"like_burst": behaviour.like_sum}
        cv = variation(behaviour.like_times)
        if cv is not None:
            features["regular_timing"] = cv
        return features

    # --- who else a rule is about ------------------------------------------------------------

    def related(
        self, rule: str, user: str, ip: str, device: str | None, key: str | None, now: float
    ) -> set[str]:
        """The accounts a cluster rule's action applies to besides `user` (node's view)."""
        if rule == "duplicate_text" and key is not None:
            return {u for u, t in self._texts.get(key, {}).items() if t >= now - TEXT_WINDOW_S}
        if rule == "conns_per_ip":
            return set(self._conns.get("ip:" + ip, ()))
        if rule == "conns_per_device" and device is not None:
            return set(self._conns.get("device:" + device, ()))
        if rule == "join_burst":
            return {u for t, u in self._joins.get(ip, ()) if t >= now - JOIN_WINDOW_S}
        return {user}

    def first_time(self, user: str, rule: str, now: float, cooldown_s: float) -> bool:
        """True when `rule` has not fired for `user` within `cooldown_s` (log it once)."""
        behaviour = self.user(user, now)
        last = behaviour.fired.get(rule)
        if last is not None and now - last < cooldown_s:
            return False
        behaviour.fired[rule] = now
        return True

    def prune(self, now: float) -> None:
        for user, behaviour in list(self.users.items()):
            if not behaviour.conns and now - behaviour.last > IDLE_USER_S:
                del self.users[user]
        for ip, joins in list(self._joins.items()):
            while joins and joins[0][0] < now - JOIN_WINDOW_S:
                joins.popleft()
            if not joins:
                del self._joins[ip]
        while self._texts:
            key, senders = next(iter(self._texts.items()))
            if max(senders.values(), default=0.0) >= now - TEXT_WINDOW_S:
                break
            del self._texts[key]
