"""Bans, mutes, grab refusals, word lists and overrides: kept in Redis (they survive restarts),
cached on every node, and changed through here. A change is written to Redis first (with its host
event, for a room), applied to this node's memory, then signalled on the `AF_SIGNALS` channel so
every other node applies it too (within a second; a node whose subscriber was away reloads
everything it keeps when it reconnects).

A room's state is loaded when the node first needs it (a viewer joins) and forgotten when the
node has had no viewer there for a while. Expired sanctions are lifted in Redis by the nodes
that keep their scope (idempotent: two nodes lifting the same one write one event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson
import structlog
import trio

from engine.antifraud import bots
from engine.antifraud.keywords import WordAction, normalize_word
from engine.antifraud.limits import ACTIONS, DIMENSIONS, OFF, Limit, LimitTable
from engine.antifraud.metrics import AntiFraudMetrics
from engine.antifraud.state import EVENT_TYPES, Kind, RoomScope, Sanction, Scope
from engine.bus.bus import Subscriber
from engine.errors import EngineError, ErrorCode, StoreUnavailable
from engine.identity import valid_id
from engine.store import keys
from engine.store.antifraud import AntiFraudStore
from engine.store.store import now_ms

log = structlog.get_logger("engine.antifraud")

IDLE_ROOM_S: Final = 600.0
MAINTENANCE_S: Final = 1.0
MAX_REASON_CHARS: Final = 200
MAX_DURATION_S: Final = 10 * 365 * 86400

Kick = Callable[[str | None, str, str], int]  # (room or None: every room, user, reason) -> closed


class Moderation:
    def __init__(
        self,
        store: AntiFraudStore,
        metrics: AntiFraudMetrics,
        *,
        node_id: str,
        limits: LimitTable,
        rules: Mapping[str, bots.Rule],
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.node_id = node_id
        self.base_limits = limits
        self.config_rules = dict(rules)  # defaults with the configuration's overrides
        self.base_rules = dict(rules)  # ... and the global overrides on top
        self.global_scope = Scope(None)
        self.rooms: dict[str, RoomScope] = {}
        self._loading: dict[str, trio.Event] = {}
        self._dirty: set[str] = set()  # rooms that got a signal while loading
        self.kick: Kick = lambda room, user, reason: 0
        self._subscriber = Subscriber(
            store.redis, self._on_signal, self._on_state, name="antifraud"
        )
        self._nursery: trio.Nursery | None = None

    # --- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._subscriber.channels.add(keys.AF_SIGNALS)  # subscribed when it connects
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._subscriber.run)
            await self._load_global()
            nursery.start_soon(self._maintenance)
            task_status.started()

    async def _load_global(self) -> None:
        self.global_scope.load(await self.store.state(None))
        self.base_rules = bots.apply_overrides(self.config_rules, self.global_scope.rule_overrides)
        for room in self.rooms.values():
            room.refresh(self.base_rules)

    async def _maintenance(self) -> None:
        while True:
            await trio.sleep(MAINTENANCE_S)
            now, clock = now_ms(), trio.current_time()
            for scope in [self.global_scope, *self.rooms.values()]:
                if scope.next_expiry and scope.next_expiry <= now:
                    await self._expire(scope)
            for room in list(self.rooms.values()):
                room.behaviour.prune(clock)
                if not room.members and clock - room.last_used > IDLE_ROOM_S:
                    del self.rooms[room.room]

    async def _expire(self, scope: Scope) -> None:
        try:
            lifted, _next = await self.store.expire(scope.id)
        except StoreUnavailable as exc:
            log.warning("sanctions not expired", scope=scope.id, error=str(exc))
            return
        now = now_ms()
        for kind, user in [k for k, s in scope.sanctions.items() if not s.active(now)]:
            scope.apply(kind, user, None)  # our memory, whoever lifted it in Redis
        for field in lifted:
            log.info("sanction expired", scope=scope.id, sanction=field)

    # --- rooms ---------------------------------------------------------------------------

    async def room(self, room: str) -> RoomScope:
        """The room's scope, loaded from Redis on first use on this node."""
        scope = self.rooms.get(room)
        if scope is not None:
            scope.last_used = trio.current_time()
            return scope
        loading = self._loading.get(room)
        if loading is not None:
            await loading.wait()
            return await self.room(room)
        loading = self._loading[room] = trio.Event()
        try:
            scope = RoomScope(room, self.base_limits)
            while True:
                self._dirty.discard(room)
                scope.load(await self.store.state(room))
                if room not in self._dirty:
                    break
            scope.refresh(self.base_rules)
            scope.loaded_at_ms = now_ms()
            scope.last_used = trio.current_time()
            self.rooms[room] = scope
            return scope
        finally:
            del self._loading[room]
            loading.set()

    # --- signals -------------------------------------------------------------------------

    def _on_signal(self, channel: bytes, data: bytes) -> None:
        message = orjson.loads(data)
        if not isinstance(message, dict):
            return
        scope_id = message.get("scope")
        if scope_id is not None and scope_id in self._loading:
            self._dirty.add(scope_id)
        op = message.get("op")
        if op == "sanction":
            self._apply_sanction(scope_id, message)
        elif op == "reload":
            self._spawn(self._reload, scope_id)

    def _apply_sanction(self, scope_id: str | None, message: dict[str, Any]) -> None:
        kind, user = Kind(message["kind"]), str(message["user"])
        record = message.get("record")
        sanction = None if record is None else Sanction.from_record(f"{kind}:{user}", record)
        scope: Scope | None = self.global_scope if scope_id is None else self.rooms.get(scope_id)
        if scope is not None:
            scope.apply(kind, user, sanction)
        if sanction is not None and kind is Kind.BAN and sanction.active(now_ms()):
            closed = self.kick(scope_id, user, sanction.reason)
            if closed:
                log.info("banned viewer closed", scope=scope_id, user=user, closed=closed)

    def _on_state(self, up: bool) -> None:
        if up:  # signals may have been missed while the subscriber was away
            self._spawn(self._reload_all)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    async def _reload(self, scope_id: str | None) -> None:
        try:
            if scope_id is None:
                await self._load_global()
            elif (room := self.rooms.get(scope_id)) is not None:
                room.load(await self.store.state(scope_id))
                room.refresh(self.base_rules)
        except StoreUnavailable as exc:
            log.warning("anti-fraud state not reloaded", scope=scope_id, error=str(exc))

    async def _reload_all(self) -> None:
        await self._reload(None)
        for room in list(self.rooms):
            await self._reload(room)

    async def _changed(self, scope_id: str | None) -> None:
        """After a change of words, limits or rules: reload here, tell the other nodes."""
        await self._reload(scope_id)
        await self.store.signal({"op": "reload", "scope": scope_id, "origin": self.node_id})

    # --- sanctions -----------------------------------------------------------------------

    def scope_of(self, room: str | None) -> Scope | None:
        return self.global_scope if room is None else self.rooms.get(room)

    async def impose(
        self,
        room: str | None,
        kind: Kind,
        user: str,
        *,
        duration_s: float | None = None,
        reason: str = "",
        by: str = "operator",
        shadow: bool = False,
    ) -> dict[str, Any]:
        """Ban, mute (`shadow`: the sender still sees its messages) or refuse the grabs of
        `user`, in `room` or everywhere (None), for `duration_s` or until lifted."""
        _check_user(user)
        if duration_s is not None and not 0 < duration_s <= MAX_DURATION_S:
            raise EngineError(f"duration_s must be in (0, {MAX_DURATION_S}]",
                              code=ErrorCode.BAD_FIELD)  # fmt: skip
        now = now_ms()
        until = 0 if duration_s is None else now + int(duration_s * 1000)
        sanction = Sanction(kind, user, until, reason[:MAX_REASON_CHARS], by[:64], now,
                            shadow and kind is Kind.MUTE)  # fmt: skip
        view = sanction.view(room)
        await self.store.sanction(room, kind, user, sanction.record(),
                                  event_type=EVENT_TYPES[(kind, True)], event=view)  # fmt: skip
        self.metrics.sanctions.labels(kind.value, "rule" if by == "antifraud" else "operator").inc()
        log.info("sanction imposed", scope=room, kind=kind.value, target=user, until=until,
                 reason=sanction.reason, by=sanction.by, shadow=sanction.shadow)  # fmt: skip
        await self._announce(room, kind, user, sanction)
        return view

    async def lift(
        self, room: str | None, kind: Kind, user: str, *, by: str = "operator"
    ) -> dict[str, Any]:
        _check_user(user)
        changed = await self.store.sanction(
            room, kind, user, None, event_type=EVENT_TYPES[(kind, False)],
            event={"user": user, "kind": kind.value, "room": room, "by": by, "reason": "lifted"},
        )  # fmt: skip
        log.info("sanction lifted", scope=room, kind=kind.value, target=user, by=by,
                 existed=changed)  # fmt: skip
        await self._announce(room, kind, user, None)
        return {"user": user, "kind": kind.value, "room": room, "lifted": changed}

    async def _announce(
        self, room: str | None, kind: Kind, user: str, sanction: Sanction | None
    ) -> None:
        message = {"op": "sanction", "scope": room, "kind": kind.value, "user": user,
                   "record": None if sanction is None else sanction.record(),
                   "origin": self.node_id}  # fmt: skip
        self._apply_sanction(room, message)  # here at once, whatever the channel does
        await self.store.signal(message)

    async def listing(self, room: str | None, kind: Kind) -> list[dict[str, Any]]:
        if room is None:
            return self.global_scope.listing(kind, now_ms())
        scope = RoomScope(room, self.base_limits)  # fresh from Redis: the node may not serve it
        scope.load(await self.store.state(room))
        return scope.listing(kind, now_ms())

    # --- word lists ----------------------------------------------------------------------

    async def change_words(
        self, room: str | None, add: Mapping[str, str], remove: Sequence[str]
    ) -> dict[str, Any]:
        adding: dict[str, str] = {}
        for word, action in add.items():
            adding[_word(word)] = WordAction(action).value
        removing = [_word(w) for w in remove]
        await self.store.set_keywords(room, adding, removing)
        log.info("keyword list changed", scope=room, added=len(adding), removed=len(removing))
        await self._changed(room)
        return await self.words(room)

    async def words(self, room: str | None) -> dict[str, Any]:
        state = await self.store.state(room)
        words = [{"word": w, "action": a} for w, a in sorted(state.keywords.items())]
        return {"room": room, "words": words}

    # --- limits and rules ----------------------------------------------------------------

    async def set_limit(
        self, room: str, action: str, dimension: str, limit: Limit | None, *, off: bool = False
    ) -> dict[str, Any]:
        """Override one limit in a room (`limit`), switch it off (`off`), or go back to the
        configured one (neither)."""
        if action not in ACTIONS or dimension not in DIMENSIONS:
            raise EngineError(f"no limit {action}:{dimension}", code=ErrorCode.BAD_FIELD)
        value = OFF if off else None if limit is None else limit.stored()
        await self.store.set_limit(room, f"{action}:{dimension}", value)
        log.info("limit changed", scope=room, action=action, dimension=dimension, value=value)
        await self._changed(room)
        return await self.limits(room)

    async def limits(self, room: str) -> dict[str, Any]:
        state = await self.store.state(room)
        table = self.base_limits.with_overrides(state.limits)
        rows = []
        for action, dim, configured, effective in table.describe():
            field = f"{action}:{dim}"
            rows.append({"action": action, "dimension": dim,
                         "configured": None if configured is None else configured.spec(),
                         "effective": None if effective is None else effective.spec(),
                         "overridden": field in state.limits})  # fmt: skip
        return {"room": room, "limits": rows}

    async def set_rule(
        self, room: str | None, rule: str, mode: bots.Mode | None, threshold: float | None
    ) -> dict[str, Any]:
        if rule not in bots.DEFAULT_RULES:
            raise EngineError(f"no bot rule {rule!r}", code=ErrorCode.BAD_FIELD)
        value = (
            None if mode is None and threshold is None else bots.format_override(mode, threshold)
        )
        await self.store.set_rule(room, rule, value)
        log.info("bot rule changed", scope=room, rule=rule, mode=mode, threshold=threshold)
        await self._changed(room)
        return await self.rules(room)

    async def rules(self, room: str | None) -> dict[str, Any]:
        glob = await self.store.state(None)
        effective = bots.apply_overrides(self.config_rules, glob.rules)
        overridden = set(glob.rules)
        if room is not None:
            state = await self.store.state(room)
            effective = bots.apply_overrides(effective, state.rules)
            overridden = set(state.rules)
        return {"room": room, "rules": [
            {"rule": r.name, "mode": r.mode.value, "threshold": r.threshold, "help": r.help,
             "overridden": r.name in overridden}
            for r in effective.values()
        ]}  # fmt: skip


def _check_user(user: str) -> None:
    if not valid_id(user):
        raise EngineError("user: not a user id", code=ErrorCode.BAD_FIELD)


def _word(word: str) -> str:
    try:
        return normalize_word(word)
    except ValueError as exc:
        raise EngineError(f"word {str(word)[:40]!r}: {exc}", code=ErrorCode.BAD_FIELD) from None
