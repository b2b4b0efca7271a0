"""The verifiable lottery draw, the pure part: the commitment, the entrant digest and the winners,
as plain functions of their inputs (no I/O, no clock, no randomness of their own).

`engine lottery verify` runs these, and `scripts/lua/lottery_draw.lua` picks the winners with the
same algorithm inside Redis (a property test checks that both always agree). docs/lottery.md
states the procedure in words, for anyone who wants to check a draw with their own code.

Version 1 ("live-lottery-v1"):

* seed: 32 random bytes, written as 64 lowercase hex digits, made when the lottery is created;
* commitment = SHA-256(seed bytes), hex: published at creation, before any entry;
* entrants: the distinct user ids entered when entries closed, sorted by their bytes (user ids
  are ASCII: `[A-Za-z0-9_.:@-]`), so the order is the same everywhere;
* digest = SHA-256 of the entrants, each followed by a newline ("a\\nb\\n"), hex;
* key = SHA-256("live-lottery-v1\\n" + seed hex + "\\n" + digest hex), hex;
* the winners: a partial Fisher-Yates shuffle of the positions 0..M-1 of the sorted list; step i
  (0, 1, ..., min(N, M) - 1) swaps position i with position i + u, u uniform in [0, M - i),
  drawn from the key: x = the first 12 hex digits (48 bits) of SHA-1(key + ":" + i + ":" + c)
  for c = 0, 1, ... until x < floor(2^48 / (M - i)) * (M - i) (no modulo bias), u = x mod (M - i).
  The winner of rank i + 1 is the entrant at position i after step i.

SHA-1 is only the stream generator, keyed by a SHA-256 value that nobody knows before the seed is
revealed: it is the hash Redis's Lua offers (`redis.sha1hex`), so the script can draw at C speed.
Its known weakness (finding collisions) gives no way to predict or steer the stream.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

VERSION: Final = "live-lottery-v1"
SEED_BYTES: Final = 32
STREAM_BITS: Final = 48
_SPACE: Final = 1 << STREAM_BITS
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
_USER: Final = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def new_seed() -> str:
    """A fresh secret seed (64 hex digits)."""
    return secrets.token_hex(SEED_BYTES)


def is_hex64(value: str) -> bool:
    return isinstance(value, str) and _HEX64.match(value) is not None


def commitment(seed: str) -> str:
    """SHA-256 of the seed's bytes, hex. Raises ValueError for a seed that is not 64 hex digits."""
    if not is_hex64(seed):
        raise ValueError("a seed is 64 lowercase hex digits")
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def seed_matches(seed: str, committed: str) -> bool:
    try:
        return hmac.compare_digest(commitment(seed), committed.strip().lower())
    except ValueError:
        return False


def sort_entrants(entrants: Iterable[str]) -> list[str]:
    """The canonical entrant list: distinct ids in byte order. Raises ValueError on an id that
    is not a user id (so a verifier's typo is not silently a different list)."""
    out = set()
    for user in entrants:
        if not isinstance(user, str) or _USER.match(user) is None:
            raise ValueError(f"{str(user)[:70]!r} is not a user id")
        out.add(user)
    return sorted(out, key=str.encode)


def digest(entrants: Sequence[str]) -> str:
    """SHA-256 of the sorted entrant list, each id followed by a newline, hex."""
    h = hashlib.sha256()
    for user in entrants:
        h.update(user.encode())
        h.update(b"\n")
    return h.hexdigest()


def draw_key(seed: str, list_digest: str) -> str:
    """The key the winners are drawn from: it depends on the seed and on the exact list."""
    return hashlib.sha256(f"{VERSION}\n{seed}\n{list_digest}".encode()).hexdigest()


def uniform(key: str, step: int, n: int) -> int:
    """A number uniform in [0, n) for step `step` of the shuffle (n >= 1)."""
    limit = (_SPACE // n) * n
    c = 0
    while True:
        x = int(hashlib.sha1(f"{key}:{step}:{c}".encode()).hexdigest()[:12], 16)
        if x < limit:
            return x % n
        c += 1


def winner_positions(key: str, count: int, wanted: int) -> list[int]:
    """Positions in the sorted list of the min(wanted, count) winners, in rank order."""
    swapped: dict[int, int] = {}
    out = []
    for i in range(min(wanted, count)):
        j = i + uniform(key, i, count - i)
        at_i, at_j = swapped.get(i, i), swapped.get(j, j)
        swapped[i], swapped[j] = at_j, at_i
        out.append(at_j)
    return out


@dataclass(frozen=True, slots=True)
class Draw:
    """A draw's result and everything needed to check it."""

    digest: str
    key: str
    entrants: int
    winners: list[str]  # in rank order (rank 1 first)


def draw(seed: str, entrants: Iterable[str], wanted: int) -> Draw:
    """The winners of a lottery with this seed and these entrants (any order, repeats ignored)."""
    if not is_hex64(seed):
        raise ValueError("a seed is 64 lowercase hex digits")
    if wanted < 1:
        raise ValueError("a lottery has at least one winner")
    ordered = sort_entrants(entrants)
    list_digest = digest(ordered)
    key = draw_key(seed, list_digest)
    positions = winner_positions(key, len(ordered), wanted)
    return Draw(list_digest, key, len(ordered), [ordered[p] for p in positions])


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `verify` found; `ok` only when every given check passed."""

    winners: list[str]
    digest: str
    entrants: int
    commitment_ok: bool
    digest_ok: bool | None  # None: no published digest was given
    winners_ok: bool | None  # None: no published winners were given

    @property
    def ok(self) -> bool:
        return self.commitment_ok and self.digest_ok is not False and self.winners_ok is not False


def verify(
    *,
    seed: str,
    committed: str,
    entrants: Iterable[str],
    wanted: int,
    published_digest: str | None = None,
    published_winners: Sequence[str] | None = None,
) -> Verdict:
    """Recompute a draw from the published seed and the entrant list and compare it with what
    was published: the commitment, the digest, the winners in rank order."""
    result = draw(seed, entrants, wanted)
    return Verdict(
        winners=result.winners,
        digest=result.digest,
        entrants=result.entrants,
        commitment_ok=seed_matches(seed, committed),
        digest_ok=None if published_digest is None else published_digest == result.digest,
        winners_ok=None if published_winners is None else list(published_winners) == result.winners,
    )
