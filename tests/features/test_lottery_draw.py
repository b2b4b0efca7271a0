"""The verifiable draw as pure code (engine/features/lottery_draw.py) and `engine lottery verify`:
winners distinct, all entrants, count = min(N, entrants); the draw reproduces from the seed and
the list; a changed list or seed fails verification."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.features import lottery_draw as ld

users = st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,12}\Z")
entrant_lists = st.lists(users, max_size=60)
seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)


@settings(max_examples=200, deadline=None)
@given(seed=seeds, entrants=entrant_lists, wanted=st.integers(1, 70))
def test_winners_are_distinct_entrants_and_min_of_n_and_entrants(
    seed: str, entrants: list[str], wanted: int
) -> None:
    result = ld.draw(seed, entrants, wanted)
    distinct = set(entrants)
    assert len(result.winners) == min(wanted, len(distinct))
    assert len(set(result.winners)) == len(result.winners)  # distinct
    assert set(result.winners) <= distinct  # all entrants
    assert result.entrants == len(distinct)


@settings(max_examples=100, deadline=None)
@given(seed=seeds, entrants=entrant_lists, wanted=st.integers(1, 20), data=st.data())
def test_order_and_repeats_of_the_list_do_not_matter_and_ranks_are_a_prefix(
    seed: str, entrants: list[str], wanted: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(entrants + entrants[:3]))
    first = ld.draw(seed, entrants, wanted)
    assert ld.draw(seed, shuffled, wanted) == first
    # the first k winners of a draw for N do not depend on N beyond k
    fewer = ld.draw(seed, entrants, max(1, wanted // 2))
    assert first.winners[: len(fewer.winners)] == fewer.winners


def test_the_algorithm_is_as_documented() -> None:
    """The procedure of docs/lottery.md, written out with hashlib only, gives the same result."""
    seed = "11" * 32
    entrants = ["carol", "alice", "bob", "dave", "erin"]
    ordered = sorted(entrants, key=str.encode)
    digest = hashlib.sha256("".join(u + "\n" for u in ordered).encode()).hexdigest()
    key = hashlib.sha256(f"live-lottery-v1\n{seed}\n{digest}".encode()).hexdigest()
    positions = list(range(len(ordered)))
    winners = []
    for i in range(3):
        n = len(ordered) - i
        c = 0
        while True:
            x = int(hashlib.sha1(f"{key}:{i}:{c}".encode()).hexdigest()[:12], 16)
            if x < (2**48 // n) * n:
                break
            c += 1
        j = i + x % n
        positions[i], positions[j] = positions[j], positions[i]
        winners.append(ordered[positions[i]])
    result = ld.draw(seed, entrants, 3)
    assert (result.digest, result.key, result.winners) == (digest, key, winners)
    assert ld.commitment(seed) == hashlib.sha256(bytes.fromhex(seed)).hexdigest()


@settings(max_examples=100, deadline=None)
@given(seed=seeds, entrants=st.lists(users, min_size=2, max_size=40, unique=True),
       wanted=st.integers(1, 5), extra=users)  # fmt: skip
def test_verify_reproduces_and_a_changed_list_or_seed_fails(
    seed: str, entrants: list[str], wanted: int, extra: str
) -> None:
    published = ld.draw(seed, entrants, wanted)
    committed = ld.commitment(seed)
    ok = ld.verify(seed=seed, committed=committed, entrants=entrants, wanted=wanted,
                   published_digest=published.digest, published_winners=published.winners)  # fmt: skip
    assert ok.ok and ok.winners == published.winners
    # one entrant more (or less): the digest no longer matches
    changed = entrants[1:] if extra in entrants else [*entrants, extra]
    bad_list = ld.verify(seed=seed, committed=committed, entrants=changed, wanted=wanted,
                         published_digest=published.digest,
                         published_winners=published.winners)  # fmt: skip
    assert not bad_list.ok and bad_list.digest_ok is False
    # another seed: the commitment no longer matches (and the winners are another draw)
    other = ("0" if seed[0] != "0" else "1") + seed[1:]
    bad_seed = ld.verify(seed=other, committed=committed, entrants=entrants, wanted=wanted,
                         published_digest=published.digest,
                         published_winners=published.winners)  # fmt: skip
    assert not bad_seed.ok and bad_seed.commitment_ok is False


def test_a_changed_list_gives_other_winners_often() -> None:
    """Not only the digest: the winners themselves depend on the exact list."""
    seed = ld.new_seed()
    base = [f"u{i}" for i in range(200)]
    first = ld.draw(seed, base, 10).winners
    differ = sum(ld.draw(seed, [*base, f"x{i}"], 10).winners != first for i in range(20))
    assert differ >= 18


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ld.draw("xyz", ["a"], 1)
    with pytest.raises(ValueError):
        ld.draw("00" * 32, ["a b"], 1)  # not a user id
    with pytest.raises(ValueError):
        ld.draw("00" * 32, ["a"], 0)
    assert ld.seed_matches("zz", "00") is False
    assert ld.draw("00" * 32, [], 3).winners == []


def _verify_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["lottery", "verify", *args], out=out)
    return code, out.getvalue()


def test_engine_lottery_verify_checks_a_published_draw(tmp_path: Path) -> None:
    seed = ld.new_seed()
    entrants = [f"user-{i}" for i in range(30)]
    result = ld.draw(seed, entrants, 3)
    status = {"seed": seed, "commitment": ld.commitment(seed), "digest": result.digest,
              "winners_wanted": 3,
              "winners": [{"user": u, "rank": r} for r, u in enumerate(result.winners, 1)]}  # fmt: skip
    (tmp_path / "status.json").write_bytes(orjson.dumps(status))
    (tmp_path / "entrants.json").write_bytes(orjson.dumps({"users": sorted(entrants)}))
    (tmp_path / "entrants.txt").write_text("\n".join(reversed(entrants)) + "\n")
    status_file, listed = str(tmp_path / "status.json"), str(tmp_path / "entrants.json")
    code, text = _verify_cli("--status", status_file, "--entrants", listed)
    assert code == 0 and "VERIFIED" in text and "NOT VERIFIED" not in text
    for user in result.winners:
        assert user in text
    code, _ = _verify_cli("--status", status_file, "--entrants", str(tmp_path / "entrants.txt"))
    assert code == 0  # one id per line, any order
    (tmp_path / "fewer.txt").write_text("\n".join(entrants[1:]))
    code, text = _verify_cli("--status", status_file, "--entrants", str(tmp_path / "fewer.txt"))
    assert code == 1 and "NOT VERIFIED" in text and "MISMATCH" in text
    code, text = _verify_cli("--status", status_file, "--entrants", listed,
                             "--seed", ld.new_seed(), "--json")  # fmt: skip
    verdict = orjson.loads(text)
    assert code == 1 and verdict["commitment_ok"] is False and verdict["ok"] is False
    # the values on the command line alone, N taken from the published winners
    code, _ = _verify_cli("--entrants", listed, "--seed", seed,
                          "--commitment", ld.commitment(seed),
                          "--expect", ",".join(result.winners))  # fmt: skip
    assert code == 0
    code, _ = _verify_cli("--entrants", listed, "--seed", seed)  # no commitment: unusable
    assert code == 2
