"""`engine lottery verify`: check a drawn lottery from what was published (docs/lottery.md).

    engine ctl --json lottery-status --room R --lottery L > status.json
    engine ctl --json lottery-entrants --room R --lottery L > entrants.json
    engine lottery verify --status status.json --entrants entrants.json

It recomputes the commitment from the revealed seed, the digest of the entrant list and the
winners (`lottery_draw.verify`), prints them, and exits 0 when everything matches what was
published, 1 when something does not, 2 on unusable input. Every value can also be given on the
command line (`--seed`, `--commitment`, `--digest`, `--winners-wanted`, `--expect`). The status
file may be the `lottery_status` result, the `lottery.drawn` event's data or the
`lottery_winners` popup's data. Without a known N, the number of published winners is used: the
first k winners of a draw do not depend on N beyond k, so a correct list is reproduced either way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from engine.features.lottery_draw import verify


def add_parser(sub: Any) -> None:
    lottery = sub.add_parser("lottery", help="lottery tools (docs/lottery.md)")
    lottery_sub = lottery.add_subparsers(dest="lottery_command", required=True)
    check = lottery_sub.add_parser(
        "verify", help="recompute a draw's winners from its seed and entrant list"
    )
    check.add_argument(
        "--entrants",
        required=True,
        metavar="FILE",
        help="the entrant list: `lottery_entrants` JSON, a JSON list, or one id per line "
        "('-': stdin)",
    )
    check.add_argument(
        "--status",
        metavar="FILE",
        help="`lottery_status` JSON (or the lottery.drawn event data, or the winners popup data)",
    )
    check.add_argument("--seed", help="the revealed seed (64 hex digits)")
    check.add_argument("--commitment", help="the commitment published at creation")
    check.add_argument("--digest", help="the published digest of the entrant list")
    check.add_argument("--winners-wanted", type=int, metavar="N", help="the lottery's N")
    check.add_argument("--expect", help="the published winners, comma-separated, rank order")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def parse_entrants(text: str) -> list[str]:
    """`lottery_entrants` output ({"users": [...]}), a JSON list, or one id per line."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        data = orjson.loads(stripped)
        users = data.get("users") if isinstance(data, dict) else data
        if not isinstance(users, list):
            raise ValueError("the entrants JSON has no list of users")
        return [str(u) for u in users]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _winner_ids(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        if isinstance(item, dict):
            out.append(str(item.get("user")))
        else:
            out.append(str(item))
    if value and isinstance(value[0], dict) and all("rank" in w for w in value):
        ranked = sorted(value, key=lambda w: int(w["rank"]))
        out = [str(w.get("user")) for w in ranked]
    return out


def gather(args: argparse.Namespace) -> dict[str, Any]:
    """The published values: the status file, then the flags (which win)."""
    published: dict[str, Any] = {}
    if args.status:
        status = orjson.loads(_read(args.status))
        if not isinstance(status, dict):
            raise ValueError("the status file is not a JSON object")
        published["seed"] = status.get("seed")
        published["commitment"] = status.get("commitment")
        published["digest"] = status.get("digest")
        wanted = status.get("winners_wanted", status.get("wanted"))
        published["wanted"] = int(wanted) if isinstance(wanted, int) else None
        published["winners"] = _winner_ids(status.get("winners"))
    if args.seed:
        published["seed"] = args.seed
    if args.commitment:
        published["commitment"] = args.commitment
    if args.digest:
        published["digest"] = args.digest
    if args.winners_wanted is not None:
        published["wanted"] = args.winners_wanted
    if args.expect is not None:
        published["winners"] = [w.strip() for w in args.expect.split(",") if w.strip()]
    return published


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        published = gather(args)
        entrants = parse_entrants(_read(args.entrants))
        seed, committed = published.get("seed"), published.get("commitment")
        if not seed or not committed:
            raise ValueError("the seed and the commitment are needed (--status or --seed and "
                             "--commitment); the seed is revealed by the draw")  # fmt: skip
        winners = published.get("winners")
        wanted = published.get("wanted") or (len(winners) if winners else None)
        if not wanted:
            raise ValueError("N is unknown: give --winners-wanted or the published winners")
        verdict = verify(seed=seed, committed=committed, entrants=entrants, wanted=int(wanted),
                         published_digest=published.get("digest"),
                         published_winners=winners)  # fmt: skip
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"engine lottery verify: {exc}\n")
        return 2
    if args.json:
        out.write(orjson.dumps({
            "ok": verdict.ok, "commitment_ok": verdict.commitment_ok,
            "digest_ok": verdict.digest_ok, "winners_ok": verdict.winners_ok,
            "entrants": verdict.entrants, "digest": verdict.digest, "winners": verdict.winners,
        }).decode() + "\n")  # fmt: skip
    else:
        _report(verdict, out)
    return 0 if verdict.ok else 1


def _mark(value: bool | None) -> str:
    return "not given" if value is None else "ok" if value else "MISMATCH"


def _report(verdict: Any, out: TextIO) -> None:
    out.write(f"entrants:   {verdict.entrants} (distinct, byte order)\n")
    out.write(f"digest:     {verdict.digest}  [{_mark(verdict.digest_ok)}]\n")
    out.write(f"commitment: SHA-256(seed)  [{_mark(verdict.commitment_ok)}]\n")
    out.write(f"winners:    [{_mark(verdict.winners_ok)}]\n")
    for rank, user in enumerate(verdict.winners, 1):
        out.write(f"  {rank:>4}  {user}\n")
    out.write("VERIFIED\n" if verdict.ok else "NOT VERIFIED\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="engine")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv), out)
