"""The anti-fraud guard in front of every viewer action (docs/antifraud.md).

The gateway asks `admit` before a viewer joins (bans, join limits, accounts per IP and device,
join bursts): a refused viewer never joins, so it is never counted online. The handlers ask
`danmaku`, `like`, `grab` (and later features `check`) before they act: a refused like never
reaches the like counter, a muted user's danmaku reaches nobody else (a shadow mute shows it to
its sender alone), a refused grab never reaches the sale.

Order of the checks for an action: bans and mutes (memory), the local shedding of a connection
that was just told to wait (memory), the behaviour features and bot rules (memory; an enforced
rule sanctions the user through `Moderation`), the shared rate limit (Redis, batched), then for
danmaku the keyword filter. Staff (anchor, admin) are not checked.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
import trio

from engine.antifraud import bots
from engine.antifraud.behaviour import text_key
from engine.antifraud.clientip import client_ip, parse_proxies
from engine.antifraud.keywords import WordAction, check
from engine.antifraud.limiter import Limiter
from engine.antifraud.limits import ACTIONS, LimitTable, parse_limits
from engine.antifraud.metrics import AntiFraudMetrics
from engine.antifraud.moderation import Moderation
from engine.antifraud.state import Kind, RoomScope, Sanction
from engine.config import Config
from engine.errors import AuthError, ErrorCode, ProtocolError, RateLimited, StoreUnavailable
from engine.identity import Identity
from engine.store import keys
from engine.store.antifraud import AntiFraudStore, LimitRequest
from engine.store.store import now_ms

log = structlog.get_logger("engine.antifraud")

SaleCreated = Callable[[str, str], Awaitable[int | None]]  # (room, sale) -> created at (ms)
LOG_COOLDOWN_S: Final = 60.0  # a rule firing for the same user is logged once per cooldown
SALE_RECHECK_S: Final = 0.2  # an unknown sale is looked up again after this long
NEW_SALE_MS: Final = 2000  # a sale younger than this whose popup the node has not delivered
MAX_CLUSTER: Final = 200  # most accounts one cluster rule sanctions at once
_SANCTION_FOR: Final = {bots.Mode.MUTE: Kind.MUTE, bots.Mode.REFUSE_GRABS: Kind.NOGRAB,
                        bots.Mode.BAN: Kind.BAN}  # fmt: skip
_CLUSTER_RULES: Final = frozenset(
    {
        "duplicate_text",
        "conns_per_ip",
        "conns_per_device",
        "join_burst",
        "accounts_per_ip",
        "accounts_per_device",
    }
)


class Visitor:
    """One admitted connection as the guard sees it."""

    __slots__ = ("blocked", "device", "ip", "joined", "scope", "staff", "user")

    def __init__(self, identity: Identity, ip: str, scope: RoomScope) -> None:
        self.user = identity.user
        self.device = identity.device
        self.ip = ip
        self.scope = scope
        self.staff = identity.role.is_staff
        self.joined = trio.current_time()
        # action -> (refused locally until, for requests of at least this cost)
        self.blocked: dict[str, tuple[float, int]] | None = None

    def ident(self, dimension: str) -> str | None:
        return self.user if dimension == "user" else self.ip if dimension == "ip" else self.device


@dataclass(frozen=True, slots=True)
class DanmakuVerdict:
    text: str | None = None  # the text to send (masked), None: unchanged (or a quick phrase)
    shadow: bool = False  # show it to the sender only
    flagged: tuple[str, ...] = ()  # words that put the message up for review


PASS: Final = DanmakuVerdict()
SHADOW: Final = DanmakuVerdict(shadow=True)


def configured_limits(config: Config) -> LimitTable:
    """The limits in the configuration; ValueError names the bad setting."""
    table = {}
    for action in ACTIONS:
        try:
            table[action] = parse_limits(getattr(config, f"limit_{action}"))
        except ValueError as exc:
            raise ValueError(f"limit_{action}: {exc}") from None
    return LimitTable(table)


def configured_rules(config: Config) -> dict[str, bots.Rule]:
    try:
        overrides = bots.parse_rules(config.antifraud_bot_rules)
    except ValueError as exc:
        raise ValueError(f"antifraud_bot_rules: {exc}") from None
    return bots.apply_overrides(bots.DEFAULT_RULES, overrides)


class AntiFraud:
    def __init__(
        self,
        config: Config,
        store: AntiFraudStore,
        metrics: AntiFraudMetrics,
        *,
        node_id: str,
        sale_created: SaleCreated,
    ) -> None:
        self.config = config
        self.proxies = parse_proxies(config.trusted_proxies)
        self.metrics = metrics
        self.store = store
        self.moderation = Moderation(store, metrics, node_id=node_id,
                                     limits=configured_limits(config),
                                     rules=configured_rules(config))  # fmt: skip
        self.limiter = Limiter(store)
        self._sale_created = sale_created
        self._sale_lookups: dict[tuple[str, str], trio.Event] = {}
        self._imposing: set[tuple[str, Kind, str]] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.limiter.run)
            await nursery.start(self.moderation.run)
            task_status.started()

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self.proxies)

    # --- joining -------------------------------------------------------------------------

    async def admit(self, identity: Identity, ip: str) -> Visitor:
        """Let a verified viewer in, or raise AuthError (banned, rate_limited)."""
        scope = await self.moderation.room(identity.room)
        visitor = Visitor(identity, ip, scope)
        if visitor.staff:
            scope.members.add(visitor)
            return visitor
        self._refuse_banned(visitor, "join")
        try:
            await self._limit(visitor, "join")
        except RateLimited as exc:
            raise AuthError(f"{exc.message}, retry after {exc.retry_after_ms} ms",
                            code=ErrorCode.RATE_LIMITED) from None  # fmt: skip
        features = scope.behaviour.on_join(visitor.user, ip, visitor.device, trio.current_time())
        scope.members.add(visitor)
        try:
            by_ip, by_device = await self.store.seen(
                scope.room, visitor.user, ip, visitor.device,
                int(self.config.antifraud_window_s * 1000),
            )  # fmt: skip
            features["accounts_per_ip"] = by_ip
            if visitor.device is not None:
                features["accounts_per_device"] = by_device
            await self._judge(visitor, features, "join")
            self._refuse_banned(visitor, "join")
        except BaseException:
            self.left(visitor)
            raise
        return visitor

    def left(self, visitor: Visitor) -> None:
        scope = visitor.scope
        if visitor not in scope.members:
            return  # already gone
        scope.members.discard(visitor)
        scope.last_used = trio.current_time()
        if not visitor.staff:
            scope.behaviour.on_leave(visitor.user, visitor.ip, visitor.device, scope.last_used)

    def _sanction(self, visitor: Visitor, kind: Kind) -> Sanction | None:
        now = now_ms()
        return visitor.scope.active(kind, visitor.user, now) or self.moderation.global_scope.active(
            kind, visitor.user, now
        )

    def _refuse_banned(self, visitor: Visitor, action: str) -> None:
        ban = self._sanction(visitor, Kind.BAN)
        if ban is not None:
            self.metrics.refused.labels(action, "banned").inc()
            until = "" if not ban.until else f" until {ban.until}"
            raise AuthError(f"banned{until}: {ban.reason or 'no reason given'}",
                            code=ErrorCode.BANNED)  # fmt: skip

    # --- messages ------------------------------------------------------------------------

    async def danmaku(self, visitor: Visitor, text: str | None) -> DanmakuVerdict:
        """Judge a danmaku (`text` None: a quick phrase). Raises ProtocolError (banned, muted,
        blocked) or RateLimited; SHADOW: show it to the sender only."""
        if visitor.staff:
            return PASS
        self._refused_if_banned(visitor, "danmaku")
        mute = self._sanction(visitor, Kind.MUTE)
        if mute is not None:
            return self._muted(visitor, mute)
        self._shed(visitor, "danmaku")
        key = None if text is None else text_key(text)
        clock = trio.current_time()
        features = visitor.scope.behaviour.on_danmaku(visitor.user, key, clock)
        action = await self._judge(visitor, features, "danmaku", key=key)
        if action is bots.Mode.BAN:
            self._refused_if_banned(visitor, "danmaku")
        if action is bots.Mode.MUTE or (mute := self._sanction(visitor, Kind.MUTE)) is not None:
            return self._muted(visitor, mute)
        await self._limit(visitor, "danmaku")
        if text is None:
            return PASS
        verdict = check(text, (self.moderation.global_scope.words, visitor.scope.words))
        if verdict.action is None:
            return PASS
        self.metrics.words.labels(verdict.action.value).inc()
        log.info("keyword filter", user=visitor.user, action=verdict.action.value,
                 words=list(verdict.words))  # fmt: skip
        if verdict.blocked:
            self.metrics.refused.labels("danmaku", "blocked").inc()
            raise ProtocolError("the message contains a blocked word", code=ErrorCode.BLOCKED)
        masked = verdict.text if verdict.action is WordAction.MASK else None
        if verdict.flag:
            self.metrics.words.labels(WordAction.FLAG.value).inc()
        return DanmakuVerdict(masked, False, verdict.words if verdict.flag else ())

    def _muted(self, visitor: Visitor, mute: Sanction | None) -> DanmakuVerdict:
        if mute is None or mute.shadow:
            self.metrics.refused.labels("danmaku", "shadow_muted").inc()
            return SHADOW
        self.metrics.refused.labels("danmaku", "muted").inc()
        raise ProtocolError(
            "you are muted" + (f" until {mute.until}" if mute.until else ""), code=ErrorCode.MUTED
        )

    async def flagged(
        self, visitor: Visitor, item: Mapping[str, Any], words: tuple[str, ...]
    ) -> None:
        """A sent danmaku matched `flag` words: the host reviews it (`danmaku.flagged`)."""
        data = {"user": visitor.user, "msg": item.get("id"), "seq": item.get("seq"),
                "text": item.get("text"), "words": list(words), "ip": visitor.ip,
                "device": visitor.device}  # fmt: skip
        try:
            await self.store.event(visitor.scope.room, "danmaku.flagged", data)
        except StoreUnavailable as exc:
            log.warning("danmaku.flagged not recorded", error=str(exc), msg=item.get("id"))

    async def like(self, visitor: Visitor, count: int) -> None:
        """Judge `count` likes; raises RateLimited or ProtocolError(banned). Returning means
        they count."""
        if visitor.staff:
            return
        self._refused_if_banned(visitor, "like", count)
        # a flood counts for like_burst even where it is shed: what matters is what it tries
        features = visitor.scope.behaviour.on_like(visitor.user, count, trio.current_time())
        if await self._judge(visitor, features, "like") is bots.Mode.BAN:
            self._refused_if_banned(visitor, "like", count)
        self._shed(visitor, "like", count)
        await self._limit(visitor, "like", count)

    async def grab(self, visitor: Visitor, sale: str) -> str | None:
        """Judge a flash-sale grab: None lets it through to the sale, else the code to answer it
        with (banned, refused). Raises RateLimited."""
        if visitor.staff:
            return None
        if self._sanction(visitor, Kind.BAN) is not None:
            self.metrics.refused.labels("grab", "banned").inc()
            return ErrorCode.BANNED.value
        if self._sanction(visitor, Kind.NOGRAB) is not None:
            self.metrics.refused.labels("grab", "refused").inc()
            return ErrorCode.REFUSED.value
        self._shed(visitor, "grab")
        reaction = await self._reaction(visitor, sale)
        action = await self._judge(visitor, {"early_grab": reaction}, "grab")
        if action is bots.Mode.BAN:
            self.metrics.refused.labels("grab", "banned").inc()
            return ErrorCode.BANNED.value
        if action is bots.Mode.REFUSE_GRABS:
            self.metrics.refused.labels("grab", "refused").inc()
            return ErrorCode.REFUSED.value
        await self._limit(visitor, "grab")
        return None

    async def check(self, visitor: Visitor, action: str, cost: int = 1) -> None:
        """Any other limited action (coupon claims, lottery entries): bans, then the limit."""
        if visitor.staff:
            return
        self._refused_if_banned(visitor, action)
        self._shed(visitor, action, cost)
        await self._limit(visitor, action, cost)

    def _refused_if_banned(self, visitor: Visitor, action: str, cost: int = 1) -> None:
        ban = self._sanction(visitor, Kind.BAN)
        if ban is not None:
            self.metrics.refused.labels(action, "banned").inc(cost)
            raise ProtocolError("you are banned from this room", code=ErrorCode.BANNED)

    # --- flash-sale popups -----------------------------------------------------------------

    def popup_delivered(self, room: str, item: Mapping[str, Any]) -> None:
        """The node delivered a popup to the room's viewers (fan-out hook): remember when a
        flash sale became visible here."""
        if not isinstance(item, Mapping) or item.get("kind") != "seckill":
            return
        scope = self.moderation.rooms.get(room)
        data = item.get("data")
        if scope is not None and isinstance(data, dict) and isinstance(data.get("sale"), str):
            scope.popups.setdefault(data["sale"], trio.current_time())
            if len(scope.popups) > 1000:
                scope.popups.pop(next(iter(scope.popups)))

    async def _reaction(self, visitor: Visitor, sale: str) -> float:
        """ms between the sale's popup becoming visible to this viewer and now; negative: it
        has not reached the viewer yet, or the sale does not exist (yet)."""
        scope, clock = visitor.scope, trio.current_time()
        seen = scope.popups.get(sale)
        if seen is not None:
            return (clock - max(seen, visitor.joined)) * 1000
        created = await self._created(scope, sale)
        if created is None:
            return -1.0  # no such sale (yet): nobody can have seen its popup; a script guessing
        if created >= scope.loaded_at_ms and now_ms() - created < NEW_SALE_MS:
            return -1.0  # the node was in the room when the sale began: its popup is still due
        return (clock - visitor.joined) * 1000  # it was in the viewer's welcome

    async def _created(self, scope: RoomScope, sale: str) -> int | None:
        known = scope.sales.get(sale)
        clock = trio.current_time()
        if known is not None and (known[0] or clock - known[1] < SALE_RECHECK_S):
            return known[0] or None
        key = (scope.room, sale)
        pending = self._sale_lookups.get(key)
        if pending is not None:
            await pending.wait()
            known = scope.sales.get(sale)
            return None if known is None else known[0] or None
        pending = self._sale_lookups[key] = trio.Event()
        try:
            created = await self._sale_created(scope.room, sale)
        except StoreUnavailable:
            created = None
        finally:
            del self._sale_lookups[key]
            pending.set()
        scope.sales[sale] = (created or 0, clock)
        return created

    # --- limits --------------------------------------------------------------------------

    def _shed(self, visitor: Visitor, action: str, cost: int = 1) -> None:
        """A connection told to wait is refused here until then, without asking Redis (a request
        costing as much as the refused one cannot pass before; a cheaper one may), and a request
        over a burst can never pass."""
        for dim, limit in visitor.scope.limits.of(action).items():
            if cost > limit.burst and visitor.ident(dim) is not None:
                self.metrics.refused.labels(action, f"rate_limited_{dim}").inc(cost)
                raise RateLimited(f"{action}: more than {limit.burst} at once for this {dim}",
                                  retry_after_ms=-1)  # fmt: skip
        blocked = visitor.blocked
        entry = blocked.get(action) if blocked else None
        if entry is not None:
            until, refused_cost = entry
            wait = until - trio.current_time()
            if wait > 0 and cost < refused_cost:
                return
            if wait > 0:
                self.metrics.refused.labels(action, "rate_limited_local").inc(cost)
                raise RateLimited(f"{action}: too fast", retry_after_ms=math.ceil(wait * 1000))
            del blocked[action]  # type: ignore[union-attr]

    async def _limit(self, visitor: Visitor, action: str, cost: int = 1) -> None:
        limits = visitor.scope.limits.of(action)
        checks, dims = [], []
        for dim, limit in limits.items():
            ident = visitor.ident(dim)
            if ident is not None:
                key = keys.rate_limit(visitor.scope.room, action, dim, ident)
                checks.append((key, limit.interval_us, limit.burst))
                dims.append(dim)
        if not checks:
            return
        answer = await self.limiter.check(visitor.scope.room, LimitRequest(cost, checks))
        if answer.allowed:
            return
        dim = dims[answer.refused_by]
        retry = answer.retry_after_ms
        if retry > 0:
            if visitor.blocked is None:
                visitor.blocked = {}
            visitor.blocked[action] = (trio.current_time() + retry / 1000, cost)
        self.metrics.refused.labels(action, f"rate_limited_{dim}").inc(cost)
        log.info("rate limited", action=action, dimension=dim, retry_after_ms=retry,
                 target=visitor.user, ip=visitor.ip, device=visitor.device)  # fmt: skip
        what = "more than the burst at once" if retry < 0 else "too fast"
        raise RateLimited(f"{action}: {what} for this {dim}", retry_after_ms=retry)

    # --- bot rules -----------------------------------------------------------------------

    async def _judge(
        self, visitor: Visitor, features: dict[str, float], context: str, key: str | None = None
    ) -> bots.Mode:
        """Score the features; log and count what fired; carry out an enforced action."""
        scope = visitor.scope
        assessment = bots.assess(features, scope.rules)
        if not assessment.fired:
            return bots.Mode.OFF
        clock = trio.current_time()
        behaviour = scope.behaviour
        for reason in assessment.reasons:
            if behaviour.first_time(visitor.user, reason.rule, clock, LOG_COOLDOWN_S):
                enforced = reason.mode.enforced
                self.metrics.decisions.labels(reason.rule, reason.mode.value,
                                              str(enforced).lower()).inc()  # fmt: skip
                log.warning(
                    "bot rule fired", rule=reason.rule, mode=reason.mode.value,
                    enforced=enforced, value=reason.value, threshold=reason.threshold,
                    score=assessment.score, reasons=assessment.reasons_text(), context=context,
                    target=visitor.user, ip=visitor.ip, device=visitor.device,
                )  # fmt: skip
        action = assessment.action
        kind = _SANCTION_FOR.get(action)
        if kind is None:
            return action
        targets = {visitor.user}
        for reason in assessment.reasons:
            if reason.mode is action and reason.rule in _CLUSTER_RULES:
                targets |= await self._cluster(visitor, reason.rule, key, clock)
        why = "bot rules: " + "; ".join(assessment.reasons_text())
        now = now_ms()
        for target in sorted(targets)[:MAX_CLUSTER]:
            pending = (scope.room, kind, target)
            if scope.active(kind, target, now) is not None or pending in self._imposing:
                continue  # already sanctioned, or being sanctioned by a concurrent decision
            self._imposing.add(pending)
            try:
                await self.moderation.impose(
                    scope.room, kind, target, duration_s=self.config.antifraud_rule_sanction_s,
                    reason=why, by="antifraud", shadow=True,
                )  # fmt: skip
            except StoreUnavailable as exc:  # enforced on this node only (until it reloads)
                log.warning("sanction not stored", target=target, error=str(exc))
                until = now + int(self.config.antifraud_rule_sanction_s * 1000)
                scope.apply(
                    kind, target, Sanction(kind, target, until, why, "antifraud", now, True)
                )
            finally:
                self._imposing.discard(pending)
        return action

    async def _cluster(
        self, visitor: Visitor, rule: str, key: str | None, clock: float
    ) -> set[str]:
        if rule in ("accounts_per_ip", "accounts_per_device"):
            dim = "ip" if rule == "accounts_per_ip" else "device"
            ident = visitor.ident(dim)
            if ident is None:
                return set()
            return set(await self.store.seen_by(visitor.scope.room, dim, ident, MAX_CLUSTER))
        scope = visitor.scope
        members = [m for m in scope.members if not m.staff]  # staff are never sanctioned
        return scope.behaviour.related(
            rule, visitor.user, key, clock, members, visitor.ip, visitor.device
        )
