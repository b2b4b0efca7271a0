"""Bot rules through the real gateway: a new rule only logs (shadow mode) and counts; switched
on, it mutes, refuses grabs or bans, the user alone or the whole cluster (accounts on one
device, the same text from many accounts); every decision is logged with its reasons and
counted in the metrics. Staff are not judged."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
import trio
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from engine import Engine
from engine.errors import CloseCode
from tests.antifraud.support import AF, drain, refused, visitor
from tests.conftest import StartEngine

pytestmark = pytest.mark.integration

PRODUCTS = [{"id": "tea", "name": "Tea", "price": 990, "stock": 50,
             "image": "https://img.example/tea.png"}]  # fmt: skip


def metric(engine: Engine, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def flood_likes(v: Any, messages: int) -> None:
    for i in range(messages):
        await v.send(type="like", count=100, rid=f"l{i}")


async def test_a_rule_in_shadow_mode_logs_and_counts_but_does_nothing(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**AF)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with visitor(engine, "tapbot", room, ip="10.0.0.1") as bot:
            await flood_likes(bot, 5)
            for i in range(5):
                assert (await bot.recv_type("result", rid=f"l{i}"))["ok"]
            await bot.send(type="ping", rid="p")
            await bot.recv_type("pong")
    fired = [e for e in logs if e["event"] == "bot rule fired"]
    assert len(fired) == 1  # once per user, rule and cooldown
    line = fired[0]
    assert line["rule"] == "like_burst" and line["mode"] == "shadow" and not line["enforced"]
    assert line["reasons"] == ["like_burst 300 >= 300"] and line["target"] == "tapbot"
    assert line["ip"] == "10.0.0.1" and line["room"] == room
    assert metric(engine, "engine_antifraud_decisions_total", rule="like_burst", mode="shadow",
                  enforced="false") == 1  # fmt: skip
    assert (await engine.command("sanctions", room=room))["bans"] == []
    assert "engine_antifraud_decisions_total" in generate_latest(engine.metrics.registry).decode()


async def test_switched_on_a_like_flood_gets_the_bot_banned_everywhere(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**AF)
    rules = await engine.command("set_bot_rule", room=room, rule="like_burst", mode="ban")
    row = next(r for r in rules["rules"] if r["rule"] == "like_burst")
    assert row["mode"] == "ban" and row["overridden"]
    async with visitor(engine, "tapbot", room, ip="10.0.0.1") as bot, \
            visitor(engine, "fan", room, ip="10.0.0.2") as fan:  # fmt: skip
        await flood_likes(bot, 10)
        code, reason = await bot.closed()
        assert code == CloseCode.BANNED and "like_burst" in reason
        with trio.fail_after(10):
            while (await fan.recv_type("likes"))["total"] != 200:
                pass  # the third hundred, the one that fired the rule, was never counted
        await trio.sleep(0.5)
        assert not [m for m in await drain(fan) if m["type"] == "likes"]
    bans = (await engine.command("sanctions", room=room))["bans"]
    assert [(b["user"], b["by"]) for b in bans] == [("tapbot", "antifraud")]
    assert bans[0]["until"] is not None  # antifraud_rule_sanction_s
    code, _ = await refused(engine, "tapbot", room, ip="10.0.0.3")
    assert code == CloseCode.BANNED
    assert metric(engine, "engine_antifraud_sanctions_total", kind="ban", source="rule") == 1


async def test_the_same_text_from_many_accounts_mutes_the_whole_cluster(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**AF)
    await engine.command("set_bot_rule", room=room, rule="duplicate_text", mode="mute",
                         threshold=3)  # fmt: skip
    spam = "Cheap followers at example dot com"
    async with visitor(engine, "reader", room, ip="10.0.0.9") as reader:
        bots = [visitor(engine, f"spam{i}", room, ip=f"10.2.0.{i}") for i in range(3)]
        async with bots[0] as b0, bots[1] as b1, bots[2] as b2:
            for i, b in enumerate((b0, b1, b2)):
                await b.send(type="danmaku", text=f"{spam} {i}", rid=i)
                await b.recv_type("result", rid=i)
            for i, b in enumerate((b0, b1, b2)):  # now muted (shadow): nobody sees it
                await b.send(type="danmaku", text=f"again {i} and again and again", rid=10 + i)
                assert (await b.recv_type("result", rid=10 + i))["ok"]
            seen = await reader.chat_texts(2)  # the third message fired the rule
            assert seen == [f"{spam} 0", f"{spam} 1"]
            await trio.sleep(0.5)
            assert not [m for m in await drain(reader) if m["type"] == "chat"]
    mutes = (await engine.command("sanctions", room=room))["mutes"]
    assert {m["user"] for m in mutes} == {"spam0", "spam1", "spam2"}
    assert all(m["shadow"] and "duplicate_text" in m["reason"] for m in mutes)


async def test_many_accounts_on_one_device_are_banned_together(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**AF)
    await engine.command("set_bot_rule", room=room, rule="accounts_per_device", mode="ban",
                         threshold=3)  # fmt: skip
    async with visitor(engine, "farm1", room, ip="10.3.0.1", device="farm-phone") as f1, \
            visitor(engine, "farm2", room, ip="10.3.0.2", device="farm-phone") as f2:  # fmt: skip
        code, reason = await refused(engine, "farm3", room, ip="10.3.0.3", device="farm-phone")
        assert code == CloseCode.BANNED and "accounts_per_device 3 >= 3" in reason
        for v in (f1, f2):  # the accounts already in are closed too
            assert (await v.closed())[0] == CloseCode.BANNED
    async with visitor(engine, "human", room, ip="10.3.0.1", device="own-phone"):
        pass  # the IP itself is not banned


async def test_grabs_before_the_popup_could_be_seen_are_refused(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**AF)
    # a generous threshold keeps this robust on a slow machine (the default is 120 ms)
    await engine.command("set_bot_rule", room=room, rule="early_grab", mode="refuse_grabs",
                         threshold=1000)  # fmt: skip
    await engine.set_products(room, PRODUCTS)
    async with visitor(engine, "script", room, ip="10.4.0.1") as script, \
            visitor(engine, "person", room, ip="10.4.0.2") as person:  # fmt: skip
        await engine.start_seckill(room, "tea", price=100, stock=10, duration_s=60, sale="s1")
        await script.send(type="grab", sale="s1", rid="fast")  # fired at t0, popup or not
        answer = await script.recv_type("result", rid="fast")
        assert not answer["ok"] and answer["code"] == "refused"
        popup = await person.recv_type("popup")
        assert popup["popup"]["kind"] == "seckill"
        await trio.sleep(1.3)  # a person sees it, thinks, presses
        await person.send(type="grab", sale="s1", rid="human")
        assert (await person.recv_type("result", rid="human"))["ok"]
        await trio.sleep(1.3)
        await script.send(type="grab", sale="s1", rid="later")  # refused from now on
        assert (await script.recv_type("result", rid="later"))["code"] == "refused"
    refusals = (await engine.command("sanctions", room=room))["grab_refusals"]
    assert [r["user"] for r in refusals] == ["script"]
    status = await engine.seckill_status(room, "s1")
    assert status["held"] == 1  # only the person's grab reached the sale
    await engine.command("restore_grabs", room=room, user="script")
    async with visitor(engine, "script", room, ip="10.4.0.1") as script:
        await trio.sleep(1.3)  # (a grab right after joining is as suspicious as an early one)
        await script.send(type="grab", sale="s1", rid="again")
        assert (await script.recv_type("result", rid="again"))["ok"]


async def test_operators_refuse_grabs_by_hand_and_staff_are_never_judged(
    start_engine: StartEngine, room: str
) -> None:
    engine = await start_engine(**{**AF, "limit_danmaku": "user=1/1m burst 1"})
    await engine.set_products(room, PRODUCTS)
    await engine.command("refuse_grabs", room=room, user="reseller", reason="resale")
    async with visitor(engine, "reseller", room, ip="10.5.0.1") as reseller, \
            visitor(engine, "host", room, ip="10.5.0.2", role="anchor") as anchor:  # fmt: skip
        await engine.start_seckill(room, "tea", price=100, stock=10, duration_s=60, sale="s2")
        await reseller.recv_type("popup")
        await trio.sleep(0.3)
        await reseller.send(type="grab", sale="s2", rid="g")
        assert (await reseller.recv_type("result", rid="g"))["code"] == "refused"
        for i in range(5):  # the anchor talks as much as it likes
            await anchor.send(type="danmaku", text=f"welcome {i}", rid=i)
            assert (await anchor.recv_type("result", rid=i))["ok"]
    async with visitor(engine, "x", room, ip="not an ip, at all") as x:  # bad input: the peer
        await x.send(type="ping", rid=1)
        await x.recv_type("pong")
