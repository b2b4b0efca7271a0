"""A seeded simulation through the real gateway: a crowd of human-like viewers mixed with several
kinds of bots, against one engine node with the production default limits and the bot rules
switched on. Prints, per kind, how many accounts were blocked and how much of what they tried
took effect, and asserts: bots blocked >= 95 %, humans blocked <= 1 %, and honest numbers (the
like total is exactly the likes the engine accepted).

Humans: their own IP (ten share one carrier NAT address) and device, random think times
(lognormal), varied messages, quick phrases and "666", likes in small bursts, and a grab some
hundreds of ms after the flash-sale popup reached them.

Bots:
* like_flood: like messages of 100 as fast as they can, reconnecting when closed;
* spam_ip: 22 accounts behind one IP sending the same spam with varying numbers;
* spam_device: 12 accounts on one device (three IPs) sending spam;
* grab_script: accounts that fire grabs at t0, the moment the sale opens, and again the moment
  its popup arrives;
* low_and_steady: accounts that join slowly from a small proxy pool, stay under every rate
  limit, and like at a machine-regular pace.

A human is *blocked* when any one of its attempts was refused or kept from the others by the
anti-fraud layer (a rate_limited/muted/blocked/banned/refused answer, a connection closed or
refused with 4008/4013/4029, a danmaku that never went out to the room). A bot is *blocked* when the layer stopped
it: a grab script that got no hold; any other bot whose last two attempts had no effect.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from engine import Engine
from engine.features.chat import chat_items
from engine.store import keys
from engine.store.store import Store, open_redis
from tests.antifraud.support import AF, url
from tests.conftest import StartEngine

pytestmark = pytest.mark.integration

SEED = 20261125
RUN_S = 15.0  # the show
SALE_AT_S = 6.0  # the flash sale opens (its popup goes out at once)
STOCK = 200
HUMANS = 80
RULES = (
    "like_burst=ban, duplicate_text=mute, accounts_per_device=ban, accounts_per_ip=ban, "
    "regular_timing=ban@0.1, early_grab=refuse_grabs@250"
)
ANTIFRAUD_CODES = {"rate_limited", "muted", "blocked", "banned", "refused"}
ANTIFRAUD_CLOSES = {4008, 4013, 4029}  # abuse, banned, rate_limited

WORDS_A = ["this", "that", "the new", "your", "the red", "the green", "the big", "the small"]
WORDS_B = ["tea", "cup", "teapot", "kettle", "gift box", "scarf", "lamp", "bag", "mug"]
WORDS_C = ["looks great", "how much is it", "is it in stock", "ship to shanghai", "any discount",
           "what size", "love it", "too expensive", "buying two", "what colour"]  # fmt: skip
SHORT = ["666", "hi", "nice!", "来了", "好", "❤️", "how much?", "wow"]
PHRASES = ["666", "Want it!", "How much?"]


@dataclass
class Attempt:
    what: str  # join, danmaku, like, grab
    units: int = 1
    answer: dict[str, Any] | None = None  # the result or error frame
    code: str | None = None  # refusal code (error/result code, or close code text)
    msg_id: str | None = None
    effect: bool | None = None  # decided at the end


@dataclass
class Actor:
    name: str
    kind: str
    ip: str
    device: str | None
    rng: random.Random
    attempts: list[Attempt] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)

    @property
    def human(self) -> bool:
        return self.kind == "human"


class Client:
    """One connection: sends with request ids and matches the answers as they come."""

    def __init__(self, ws: WebSocketConnection, actor: Actor, sim: Sim) -> None:
        self.ws, self.actor, self.sim = ws, actor, sim
        self.pending: dict[int, Attempt] = {}
        self.rids = itertools.count(1)
        self.popup = trio.Event()
        self.closed = trio.Event()
        self.welcome: dict[str, Any] = {}

    async def read(self) -> None:
        try:
            while True:
                message = orjson.loads(await self.ws.get_message())
                kind = message.get("type")
                if kind in ("result", "error") and message.get("rid") in self.pending:
                    attempt = self.pending.pop(message["rid"])
                    attempt.answer = message
                    if kind == "error" or not message.get("ok", True):
                        attempt.code = message.get("code")
                    elif attempt.what == "danmaku":
                        attempt.msg_id = message["data"]["id"]
                elif kind == "popup" and message["popup"]["kind"] == "seckill":
                    self.popup.set()
                elif kind == "chat" and self.actor.kind == "observer":
                    self.sim.seen.update(m["id"] for m in message["msgs"])
                elif kind == "likes" and self.actor.kind == "observer":
                    self.sim.likes_seen = max(self.sim.likes_seen, message["total"])
        except ConnectionClosed as exc:
            self.actor.closes.append(exc.reason.code)
            for attempt in self.pending.values():
                attempt.code = attempt.code or f"closed {exc.reason.code}"
        finally:
            self.closed.set()

    async def settled(self) -> None:
        """Wait for the answers still on their way (a slow machine may be seconds behind)."""
        with trio.move_on_after(30):
            while self.pending and not self.closed.is_set():
                await trio.sleep(0.05)

    async def send(self, what: str, units: int = 1, **message: Any) -> Attempt:
        attempt = Attempt(what, units)
        self.actor.attempts.append(attempt)
        if self.closed.is_set():
            attempt.code = "closed"
            return attempt
        rid = next(self.rids)
        self.pending[rid] = attempt
        try:
            await self.ws.send_message(orjson.dumps({**message, "rid": rid}).decode())
        except ConnectionClosed:
            self.pending.pop(rid, None)
            attempt.code = "closed"
        return attempt


class Sim:
    def __init__(self, engine: Engine, room: str) -> None:
        self.engine, self.room = engine, room
        self.seen: set[str] = set()  # chat message ids the observers saw
        self.likes_seen = 0
        self.t0 = trio.current_time()
        self.end = self.t0 + RUN_S
        self.sale_go = trio.Event()
        self.actors: list[Actor] = []

    def at(self, seconds: float) -> float:
        return self.t0 + seconds

    @asynccontextmanager
    async def session(self, actor: Actor) -> AsyncIterator[Client | None]:
        """Join (an attempt of its own): the connected client, or None when refused."""
        attempt = Attempt("join")
        actor.attempts.append(attempt)
        token = self.engine.mint_token(actor.name, self.room, device=actor.device)
        headers = [(b"x-forwarded-for", actor.ip.encode())]
        async with open_websocket_url(f"{url(self.engine)}?token={token}",
                                      subprotocols=["json"], extra_headers=headers) as ws:  # fmt: skip
            try:
                with trio.fail_after(30):
                    welcome = orjson.loads(await ws.get_message())
            except ConnectionClosed as exc:
                attempt.code = f"closed {exc.reason.code}"
                actor.closes.append(exc.reason.code)
                yield None
                return
            attempt.answer = welcome
            client = Client(ws, actor, self)
            client.welcome = welcome
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)
                yield client
                await client.settled()
                nursery.cancel_scope.cancel()

    async def sleep_until(self, when: float) -> bool:
        """False once the show is over."""
        await trio.sleep_until(min(when, self.end))
        return trio.current_time() < self.end


# --- behaviours -------------------------------------------------------------------------------


def human_text(rng: random.Random) -> tuple[str | None, int | None]:
    roll = rng.random()
    if roll < 0.15:
        return None, rng.randrange(len(PHRASES))
    if roll < 0.35:
        return rng.choice(SHORT), None
    return f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)} {rng.choice(WORDS_C)}", None


async def human(sim: Sim, actor: Actor) -> None:
    rng = actor.rng
    await sim.sleep_until(sim.at(rng.uniform(0, 3)))
    grabs = rng.random() < 0.7
    async with sim.session(actor) as client, trio.open_nursery() as nursery:
        if client is None:
            return
        nursery.start_soon(human_grab, sim, client, grabs)
        while await sim.sleep_until(trio.current_time() + rng.lognormvariate(math.log(2.5), 0.6)):
            if rng.random() < 0.6:
                text, phrase = human_text(rng)
                message = {"text": text} if text is not None else {"phrase": phrase}
                await client.send("danmaku", type="danmaku", **message)
            else:
                count = rng.randint(1, 15)
                await client.send("like", count, type="like", count=count)
        nursery.cancel_scope.cancel()


async def human_grab(sim: Sim, client: Client, grabs: bool) -> None:
    await client.popup.wait()
    if not grabs:
        return
    rng = random.Random(f"{SEED}:{client.actor.name}:grab")  # not the main loop's: no race
    await trio.sleep(0.4 + rng.lognormvariate(math.log(0.5), 0.5))  # see, decide, press
    await client.send("grab", type="grab", sale="flash-1")


async def like_flood(sim: Sim, actor: Actor) -> None:
    await sim.sleep_until(sim.at(1.0 + actor.rng.uniform(0, 1)))
    while trio.current_time() < sim.end:
        async with sim.session(actor) as client:
            while client is not None and not client.closed.is_set():
                if trio.current_time() >= sim.end:
                    break
                await client.send("like", 100, type="like", count=100)
                await trio.sleep(0.02)
        await sim.sleep_until(trio.current_time() + 0.4)


async def spammer(sim: Sim, actor: Actor, start: float, pitch: str) -> None:
    rng = actor.rng
    await sim.sleep_until(sim.at(start))
    while trio.current_time() < sim.end:
        async with sim.session(actor) as client:
            while client is not None and not client.closed.is_set():
                text = f"{pitch} {rng.randint(100, 999)}"
                await client.send("danmaku", type="danmaku", text=text)
                if not await sim.sleep_until(trio.current_time() + rng.uniform(0.8, 1.6)):
                    break
        await sim.sleep_until(trio.current_time() + 0.5)


async def grab_script(sim: Sim, actor: Actor) -> None:
    await sim.sleep_until(sim.at(actor.rng.uniform(0.5, 3)))
    async with sim.session(actor) as client:
        if client is None:
            return
        await sim.sale_go.wait()  # t0: fire, popup or not
        for _ in range(2):
            await client.send("grab", type="grab", sale="flash-1")
            await trio.sleep(0.01)
        await client.popup.wait()  # and again the moment it shows
        await client.send("grab", type="grab", sale="flash-1")
        await sim.sleep_until(sim.end)


async def low_and_steady(sim: Sim, actor: Actor, start: float) -> None:
    await sim.sleep_until(sim.at(start))
    while trio.current_time() < sim.end:
        async with sim.session(actor) as client:
            tick = trio.current_time()
            while client is not None and not client.closed.is_set():
                await client.send("like", 3, type="like", count=3)
                tick += 0.55  # like clockwork
                if not await sim.sleep_until(tick):
                    break
        await sim.sleep_until(trio.current_time() + 0.5)


async def observer(sim: Sim, actor: Actor, done: trio.Event) -> None:
    async with sim.session(actor) as client:
        assert client is not None
        await done.wait()


# --- the run ----------------------------------------------------------------------------------


def cast(rng: random.Random) -> list[tuple[Actor, Any]]:
    """Who plays (deterministic from the seed)."""
    out: list[tuple[Actor, Any]] = []

    def actor(name: str, kind: str, ip: str, device: str | None) -> Actor:
        return Actor(name, kind, ip, device, random.Random(f"{SEED}:{name}"))

    for i in range(HUMANS):
        ip = "100.64.0.1" if i < 10 else f"198.51.{i // 200}.{i % 200 + 1}"
        out.append((actor(f"h{i:03d}", "human", ip, f"phone-{i}"), human))
    for i in range(5):
        out.append((actor(f"lf{i}", "like_flood", f"203.0.113.{10 + i}", f"lf-dev-{i}"),
                    like_flood))  # fmt: skip
    for i in range(22):
        a = actor(f"sa{i:02d}", "spam_ip", "203.0.113.66", f"rand-{rng.getrandbits(32):x}")
        out.append((a, lambda sim, a, s=0.5 + i * 0.05: spammer(sim, a, s,
                    "Cheap followers at xx dot com code")))  # fmt: skip
    for i in range(12):
        a = actor(f"sd{i:02d}", "spam_device", f"203.0.113.{70 + i % 3}", "emu-farm-1")
        out.append((a, lambda sim, a, s=1.0 + i * 0.05: spammer(sim, a, s,
                    "Earn money fast add my wechat")))  # fmt: skip
    for i in range(15):
        out.append((actor(f"gs{i:02d}", "grab_script", f"192.0.2.{i + 1}", f"gs-dev-{i}"),
                    grab_script))  # fmt: skip
    for i in range(10):
        a = actor(f"ls{i:02d}", "low_and_steady", f"198.18.0.{i % 5 + 1}", f"ls-dev-{i}")
        out.append((a, lambda sim, a, s=0.2 + i * 0.15: low_and_steady(sim, a, s)))
    return out


def settle(actor: Actor, seen: set[str]) -> None:
    """Decide, for every attempt, whether it took effect."""
    for attempt in actor.attempts:
        if attempt.what == "join":
            attempt.effect = attempt.answer is not None
        elif attempt.code is not None or attempt.answer is None:
            attempt.effect = False
        elif attempt.what == "danmaku":
            attempt.effect = attempt.msg_id in seen  # shadow-muted ones nobody else saw
        else:
            attempt.effect = bool(attempt.answer.get("ok", True))


def human_blocked(actor: Actor) -> list[str]:
    """What the anti-fraud layer refused of a human (a machine too slow to keep up may close a
    viewer as slow_consumer: that is not the anti-fraud layer's doing)."""
    why = [a.code for a in actor.attempts if a.code in ANTIFRAUD_CODES]
    why += [f"unseen {a.msg_id}" for a in actor.attempts
            if a.what == "danmaku" and a.code is None and a.answer and not a.effect]  # fmt: skip
    why += [f"closed {c}" for c in actor.closes if c in ANTIFRAUD_CLOSES]
    return why


def bot_blocked(actor: Actor) -> bool:
    if actor.kind == "grab_script":
        return not any(a.what == "grab" and a.effect for a in actor.attempts)
    last = actor.attempts[-2:]
    return len(last) == 2 and not any(a.effect for a in last)


async def test_seeded_simulation_blocks_bots_and_lets_humans_be(
    start_engine: StartEngine, room: str, redis_url: str
) -> None:
    engine = await start_engine(**{**AF, "abuse_strikes": 20}, antifraud_bot_rules=RULES,
                                limit_join="user=10/1m burst 5, ip=120/1m burst 60, "
                                           "device=10/1m burst 5",
                                limit_danmaku="user=20/1m burst 5, ip=300/1m burst 60, "
                                              "device=20/1m burst 5",
                                limit_like="user=10/1s burst 100, ip=200/1s burst 2000, "
                                           "device=10/1s burst 100",
                                limit_grab="user=2/1s burst 5, ip=50/1s burst 200, "
                                           "device=2/1s burst 5")  # fmt: skip
    await engine.set_quick_phrases(room, PHRASES)
    await engine.set_products(room, [{"id": "tea", "name": "Tea", "price": 990, "stock": STOCK,
                                      "image": "https://img.example/tea.png"}])  # fmt: skip
    players = cast(random.Random(SEED))
    sim = Sim(engine, room)
    done = trio.Event()
    watchers = [Actor(f"obs{i}", "observer", f"198.19.0.{i + 1}", None, random.Random(i))
                for i in range(2)]  # fmt: skip
    async with trio.open_nursery() as nursery:
        for w in watchers:
            nursery.start_soon(observer, sim, w, done)
        await trio.sleep(0.5)
        sim.t0 = trio.current_time()
        sim.end = sim.t0 + RUN_S
        async with trio.open_nursery() as actors:
            for actor, behaviour in players:
                sim.actors.append(actor)
                actors.start_soon(behaviour, sim, actor)
            await trio.sleep_until(sim.at(SALE_AT_S))
            sim.sale_go.set()
            await engine.start_seckill(room, "tea", price=100, stock=STOCK, limit=1,
                                       duration_s=60, sale="flash-1")  # fmt: skip
        # honest numbers: the room's like total (what every viewer is shown) counts the likes the
        # engine accepted and none it refused; a like whose answer a connection the machine was
        # too slow for lost may be either
        likes = [a for actor in sim.actors for a in actor.attempts if a.what == "like"]
        accepted = sum(a.units for a in likes if a.answer and a.code is None)
        unknown = sum(a.units for a in likes if a.answer is None)
        total = -1
        with trio.move_on_after(20):  # the counters flush per tick; a slow machine lags
            while total != (total := (await engine.live_numbers(room))["likes"]):
                await trio.sleep(0.5)
        async with sim.session(Actor("late", "observer", "198.19.1.1", None,
                                     random.Random(0))) as late:  # fmt: skip
            assert late is not None
            shown = late.welcome["snapshot"]["likes"]
        await trio.sleep(0.5)  # the last chat frames
        done.set()
    # a danmaku took effect if it went out to the room: the observers saw it, or it is in the
    # room's history (an observer the machine left behind may have lost chat frames)
    async with open_redis(redis_url) as redis:
        _, published = await Store(redis).history(room, 0, 10**9)
    sim.seen |= {item["id"] for _, p in published if (m := msgpack.unpackb(p)).get("k") == "chat"
                 for item in chat_items(m)}  # fmt: skip
    for actor in sim.actors:
        settle(actor, sim.seen)
    report(sim.actors)
    assert accepted <= total <= accepted + unknown and shown == total
    assert sim.likes_seen <= total  # viewers were never shown more
    humans = [a for a in sim.actors if a.human]
    bots = [a for a in sim.actors if not a.human]
    blocked_humans = {a.name: human_blocked(a) for a in humans if human_blocked(a)}
    assert len(blocked_humans) <= 0.01 * len(humans), blocked_humans
    assert sum(bot_blocked(a) for a in bots) >= 0.95 * len(bots)
    assert all(a.attempts[0].answer for a in humans)  # every human got in
    # what the engine says it did agrees with what the clients saw
    sanctions = await engine.command("sanctions", room=room)
    sanctioned = {s["user"] for kind in ("bans", "mutes", "grab_refusals")
                  for s in sanctions[kind]}  # fmt: skip
    assert not sanctioned & {a.name for a in humans}
    async with open_redis(redis_url) as redis:  # every unit sold went to a human
        holds = await redis.hvals(keys.sale_holds(room, "flash-1"))
    holders = {h.decode().split("\t")[3] for h in holds}
    assert holders and all(name.startswith("h") for name in holders), holders


def report(actors: list[Actor]) -> None:
    rows = []
    kinds = list(dict.fromkeys(a.kind for a in actors))
    for kind in kinds:
        group = [a for a in actors if a.kind == kind]
        blocked = sum(bool(human_blocked(a)) if kind == "human" else bot_blocked(a)
                      for a in group)  # fmt: skip
        tried = sum(t.units for a in group for t in a.attempts)
        effect = sum(t.units for a in group for t in a.attempts if t.effect)
        rows.append((kind, len(group), blocked, tried, effect))
    bots = [r for r in rows if r[0] != "human"]
    total = ("bots (all kinds)", sum(r[1] for r in bots), sum(r[2] for r in bots),
             sum(r[3] for r in bots), sum(r[4] for r in bots))  # fmt: skip
    lines = [f"\nseeded simulation (seed {SEED}): accounts blocked, and units tried / with effect",
             f"{'kind':<18}{'accounts':>9}{'blocked':>9}{'blocked %':>11}{'units tried':>13}"
             f"{'with effect':>13}{'no effect %':>13}"]  # fmt: skip
    for kind, n, blocked, tried, effect in [*rows, total]:
        lines.append(f"{kind:<18}{n:>9}{blocked:>9}{100 * blocked / n:>10.1f}%{tried:>13}"
                     f"{effect:>13}{100 * (tried - effect) / max(tried, 1):>12.1f}%")  # fmt: skip
    codes = Counter(t.code for a in actors if not a.human for t in a.attempts if t.code)
    lines.append("bot refusals by code: " + ", ".join(f"{c} {n}" for c, n in codes.most_common()))
    print("\n".join(lines))  # noqa: T201 - the figure the issue asks to print
