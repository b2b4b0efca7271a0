"""`Engine`: one node. Wires the store, the bus and rooms, the features, the viewer gateway and the
HTTP side, and runs them in one nursery: `await nursery.start(engine.serve)` inside any Trio
program, and cancelling that nursery shuts the node down."""

from __future__ import annotations

import dataclasses
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
import trio

from engine.antifraud.guard import AntiFraud
from engine.antifraud.metrics import AntiFraudMetrics
from engine.config import Config
from engine.control.plane import ControlPlane
from engine.control.registry import OPERATOR
from engine.devkeys import resolve_keys
from engine.errors import ErrorCode
from engine.fanout.rooms import RoomRegistry
from engine.features.chat import MAX_BATCH, Chat
from engine.features.counters import TickCounters
from engine.features.coupons_node import Coupons, coupon_numbers
from engine.features.follows import Follows
from engine.features.likes import LikeCounter
from engine.features.lottery_node import Lottery, lottery_numbers
from engine.features.popups import Popups
from engine.features.products import Products
from engine.features.pulse import LiveNumbers, RoomPulse, sales_source
from engine.features.reservations import Reservations
from engine.features.rooms import REMINDER_JOB, RoomLifecycle
from engine.features.seckill_node import Seckill
from engine.features.shares import Shares
from engine.gateway.dispatch import Dispatcher
from engine.gateway.gateway import Gateway
from engine.gateway.handlers import coupons as coupon_handlers
from engine.gateway.handlers import follows as follow_handlers
from engine.gateway.handlers import reservations as reservation_handlers
from engine.gateway.handlers import room as room_handlers
from engine.gateway.handlers import seckill as seckill_handlers
from engine.http import build_app, serve_http
from engine.identity import Identity, Role, TokenVerifier, mint_token
from engine.metrics import Metrics
from engine.presence import Presence
from engine.protocol.client import Danmaku, clean_text
from engine.scheduler import Scheduler
from engine.stats import NodeStats
from engine.store.antifraud import AntiFraudStore
from engine.store.coupons import CouponStore
from engine.store.devredis import private_redis
from engine.store.follows import FollowStore
from engine.store.jobs import JobStore
from engine.store.lottery import LotteryStore
from engine.store.rooms import RoomStore
from engine.store.seckill import SeckillStore
from engine.store.store import Store, open_redis
from engine.web import engine_web_routes

log = structlog.get_logger("engine")

_F = TypeVar("_F")
SHUTDOWN_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where a running node listens."""

    node_id: str
    ws_url: str
    http_url: str
    ws_port: int
    http_port: int
    redis_url: str
    control_url: str = ""  # the control WebSocket (JSON-RPC, live numbers)
    control_socket: str | None = None  # the operators' Unix socket, if this node serves it


@dataclass(slots=True)
class _Services:
    store: Store
    chat: Chat
    popups: Popups
    likes: LikeCounter
    gateway: Gateway
    rooms: RoomRegistry
    seckill: Seckill
    products: Products
    lifecycle: RoomLifecycle
    reservations: Reservations
    shares: Shares
    numbers: LiveNumbers
    antifraud: AntiFraud | None = None
    coupons: Coupons | None = None
    follows: Follows | None = None
    lottery: Lottery | None = None


class Engine:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config.from_env()
        self.node_id = self.config.resolved_node_id()
        self.keys = resolve_keys(self.config)
        self.verifier = TokenVerifier(self.keys, self.config.token_leeway_s)
        self.stats = NodeStats()
        self.metrics = Metrics(self.stats)
        self.control = ControlPlane(self)  # the command registry and its transports
        self.address: NodeAddress | None = None
        self._services: _Services | None = None
        self._services_scope: trio.CancelScope | None = None

    async def serve(
        self,
        *,
        ws_socket: socket.socket | None = None,
        task_status: trio.TaskStatus[NodeAddress] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the node until cancelled. `started()` gets its `NodeAddress` once it accepts.

        Cancellation is turned into an orderly stop: the services are cancelled first, while
        Redis is still open, so viewers' leaves and pending likes are recorded; then Redis (and a
        private redis-server) go. The whole stop is bounded by SHUTDOWN_TIMEOUT_S."""
        async with trio.open_nursery() as nursery:
            shield = trio.CancelScope(shield=True)
            address = await nursery.start(self._serve_shielded, shield, ws_socket)
            task_status.started(address)
            try:
                await trio.sleep_forever()
            finally:
                shield.deadline = trio.current_time() + SHUTDOWN_TIMEOUT_S
                services = self._services
                if services is not None:  # even a plain cancel says goodbye to viewers
                    with trio.CancelScope(shield=True):
                        await services.gateway.drain(timeout_s=1.0)
                if self._services_scope is not None:
                    self._services_scope.cancel()

    async def _serve_shielded(
        self,
        shield: trio.CancelScope,
        ws_socket: socket.socket | None,
        *,
        task_status: trio.TaskStatus[NodeAddress] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with shield:
            await self._serve(ws_socket, task_status)

    async def _serve(
        self, ws_socket: socket.socket | None, task_status: trio.TaskStatus[NodeAddress]
    ) -> None:
        config = self.config
        async with AsyncExitStack() as stack:
            redis_url = config.redis_url or await stack.enter_async_context(
                private_redis(f"{config.data_dir}/redis")
            )
            redis = await stack.enter_async_context(open_redis(redis_url))
            store = Store(
                redis,
                event_maxlen=config.event_stream_maxlen,
                history_size=config.history_size,
                history_ttl_s=config.history_ttl_s,
            )
            await store.load_scripts()
            rooms = RoomRegistry(config, store, self.stats, self.metrics)
            # chat_tick_ms 0 promises every danmaku a frame of its own at once: no window to
            # wait in, no batch to share
            batching = config.chat_tick_ms > 0
            chat = Chat(
                store, self.node_id, config.max_danmaku_chars,
                window_s=config.chat_publish_window_ms / 1000 if batching else 0.0,
                max_batch=MAX_BATCH if batching else 1,
            )  # fmt: skip
            likes = LikeCounter(store, rooms.tick_s)
            dispatcher = Dispatcher()
            popups = Popups(store)
            seckill_store = SeckillStore(redis, event_maxlen=config.event_stream_maxlen)
            guard = self._antifraud(redis, seckill_store) if config.antifraud else None
            if guard is not None:
                rooms.on_popup = guard.popup_delivered
            room_handlers.register(dispatcher, chat, likes, guard)
            seckill = Seckill(config, seckill_store, store, popups, node_id=self.node_id,
                              tick_s=rooms.tick_s)  # fmt: skip
            products = Products(seckill_store, popups)
            seckill_handlers.register(
                dispatcher, seckill, products, max_inflight=config.seckill_max_inflight_per_viewer,
                guard=guard,
            )  # fmt: skip
            room_store = RoomStore(redis, event_maxlen=config.event_stream_maxlen)
            scheduler = Scheduler(JobStore(redis), poll_s=config.scheduler_poll_s,
                                  lease_s=config.scheduler_lease_s)  # fmt: skip
            lifecycle = RoomLifecycle(
                room_store, popups, scheduler, reminder_lead_s=config.reminder_lead_s
            )
            reservations = Reservations(room_store)
            scheduler.register(REMINDER_JOB, reservations.run_reminders)
            reservation_handlers.register(dispatcher, reservations)
            counters = TickCounters(store, max(rooms.tick_s, config.promo_counter_interval_s))
            cap = config.event_stream_maxlen
            coupons = Coupons(config, CouponStore(redis, event_maxlen=cap), popups, scheduler,
                              counters)  # fmt: skip
            follows = Follows(FollowStore(redis, event_maxlen=cap))
            lottery = Lottery(config, LotteryStore(redis, event_maxlen=cap), popups, scheduler,
                              counters)  # fmt: skip
            chat.listeners.append(lottery.on_danmaku)  # keyword entries
            inflight = config.seckill_max_inflight_per_viewer
            coupon_handlers.register(dispatcher, coupons, guard, max_inflight=inflight)
            follow_handlers.register(dispatcher, follows, lottery, guard, max_inflight=inflight)
            rooms.on_popup = _both(lottery.popup_delivered, rooms.on_popup)
            presence = Presence(
                store,
                grace_s=config.presence_grace_s,
                refresh_s=config.presence_refresh_s,
                on_online=rooms.set_online,
            )
            gateway = Gateway(
                config,
                node_id=self.node_id,
                verifier=self.verifier,
                rooms=rooms,
                store=store,
                presence=presence,
                dispatcher=dispatcher,
                stats=self.stats,
                metrics=self.metrics,
                admission=lifecycle.admit,
                guard=guard,
            )
            self.metrics.reads_waiting.set_function(gateway.reads_waiting)
            self.metrics.joins_waiting.set_function(gateway.joins_waiting)
            if guard is not None:
                guard.moderation.kick = gateway.close_user
            lifecycle.evict = lambda room: gateway.close_viewers(
                room, ErrorCode.REHEARSAL, "the room is in rehearsal: staff only"
            )
            pulse = RoomPulse(
                room_store,
                serving=lambda: [r.id for r in rooms.rooms.values() if r.size],
                take_sent=chat.take_sent,
                on_rehearsal=lifecycle.seen_rehearsal,
            )
            numbers = LiveNumbers(room_store)
            numbers.add_source("sales", sales_source(seckill_store))
            numbers.add_source("coupons", lambda room: coupon_numbers(coupons, room))
            numbers.add_source("lotteries", lambda room: lottery_numbers(lottery, room))
            numbers.add_source("follows", follows.numbers)
            self._services = _Services(
                store, chat, popups, likes, gateway, rooms, seckill, products,
                lifecycle, reservations, Shares(room_store, coupons.for_share), numbers, guard,
                coupons, follows, lottery,
            )  # fmt: skip
            try:
                async with trio.open_nursery() as nursery:
                    self._services_scope = nursery.cancel_scope
                    await nursery.start(rooms.run)
                    await nursery.start(chat.run)
                    await nursery.start(presence.run)
                    if guard is not None:
                        await nursery.start(guard.run)
                    await nursery.start(likes.run)
                    await nursery.start(seckill.run)
                    await nursery.start(counters.run)
                    await nursery.start(coupons.run)
                    await nursery.start(lottery.run)
                    ws_port = await nursery.start(gateway.serve, ws_socket)
                    await nursery.start(scheduler.run)
                    await nursery.start(pulse.run)
                    control_socket = None
                    if (socket_path := config.control_socket_path()) is not None:
                        control_socket = await nursery.start(self.control.serve_unix, socket_path)
                    routes = [*self.control.routes(), *engine_web_routes(self)]
                    app = build_app(self.metrics, self._health, routes)
                    http_port = await nursery.start(serve_http, app, config.host, config.http_port)
                    self.address = _address(config, self.node_id, ws_port, http_port, redis_url)
                    self.address = dataclasses.replace(self.address, control_socket=control_socket)
                    log.info("engine node started", **_public(self.address))
                    task_status.started(self.address)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await likes.flush()  # likes taken but not yet added are not lost
                self._services = None
                self._services_scope = None
                self.address = None
                log.info("engine node stopped", node=self.node_id)

    def _antifraud(self, redis: Any, seckill_store: SeckillStore) -> AntiFraud:
        async def sale_created(room: str, sale: str) -> int | None:
            created = (await seckill_store.sale_info(room, sale)).get("created_at")
            return int(created) if created and created.isdigit() else None

        store = AntiFraudStore(redis, event_maxlen=self.config.event_stream_maxlen)
        metrics = AntiFraudMetrics(self.metrics.registry)
        return AntiFraud(self.config, store, metrics, node_id=self.node_id,
                         sale_created=sale_created)  # fmt: skip

    # --- internal API (the control plane will expose these) --------------------------------

    @property
    def antifraud(self) -> AntiFraud:
        """The anti-fraud layer of the running node: `antifraud.moderation` bans, mutes, word
        lists, limits and bot rules (docs/antifraud.md; the control plane calls it)."""
        guard = self._running().antifraud
        if guard is None:
            raise RuntimeError("anti-fraud is switched off (antifraud = false)")
        return guard

    @property
    def coupons(self) -> Coupons:
        """Coupon batches of the running node: create, drop, schedule, end, status, list, share
        coupon (docs/coupons.md; the control plane calls it)."""
        return _need(self._running().coupons)

    @property
    def lottery(self) -> Lottery:
        """Lotteries of the running node: create, draw, cancel, claim, status, list, entrants
        (docs/lottery.md; the control plane calls it)."""
        return _need(self._running().lottery)

    @property
    def follows(self) -> Follows:
        return _need(self._running().follows)

    def _running(self) -> _Services:
        if self._services is None:
            raise RuntimeError("the engine is not running: start Engine.serve first")
        return self._services

    async def push_popup(
        self, room: str, kind: str, data: dict[str, Any], *, ttl_s: float | None = None
    ) -> dict[str, Any]:
        """Show a popup to every viewer of `room` now (and to later joiners while it lasts)."""
        return await self._running().popups.push(room, kind, data, ttl_s=ttl_s)

    async def pin(self, room: str, text: str, *, by: str | None = None) -> dict[str, Any]:
        """Pin a message (`by`: who pinned it, shown to viewers)."""
        who = None if by is None else Identity(by, room, Role.ANCHOR, expires_at=0.0)
        return await self._running().chat.pin(room, text, who)

    async def unpin(self, room: str) -> None:
        await self._running().chat.unpin(room)

    async def set_quick_phrases(self, room: str, phrases: list[str]) -> list[dict[str, Any]]:
        return await self._running().chat.set_phrases(room, phrases)

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """A graceful stop's first half (SIGTERM): stop accepting, tell viewers to reconnect
        (they resume on another node), wait for them to go. Cancel `serve` afterwards."""
        await self._running().gateway.drain(timeout_s)

    # --- products and flash sales (see docs/seckill.md) ----------------------------------

    async def set_products(self, room: str, products: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the room's product list: each {id, name, image, price, list_price?, stock,
        order?, promo?}, prices in minor units. Raises RequestRefused(bad_field)."""
        return await self._running().products.set_products(room, products)

    async def get_products(self, room: str) -> list[dict[str, Any]]:
        return await self._running().products.products(room)

    async def mount_product(self, room: str, product: str) -> dict[str, Any]:
        """Show a product's card (popup `product_card`); returns the room's cards."""
        return await self._running().products.card(room, "mount", product)

    async def unmount_product(self, room: str, product: str) -> dict[str, Any]:
        return await self._running().products.card(room, "unmount", product)

    async def pin_product(self, room: str, product: str) -> dict[str, Any]:
        """Pin a product's card (mounting it if needed); one pinned card per room."""
        return await self._running().products.card(room, "pin", product)

    async def unpin_product(self, room: str) -> dict[str, Any]:
        return await self._running().products.card(room, "unpin")

    async def product_clicks(self, room: str) -> dict[str, int]:
        return await self._running().products.clicks(room)

    async def start_seckill(self, room: str, product: str, **settings: Any) -> dict[str, Any]:
        """Start a flash sale on a product: price, stock, limit (per user, default 1), start_at
        (ms, default now), end_at (ms) or duration_s, hold_s (default seckill_hold_s), sale (id,
        default generated), event_id. Raises RequestRefused (bad_field, unknown_product,
        sale_exists)."""
        return await self._running().seckill.start(room, product=product, **settings)

    async def end_seckill(self, room: str, sale: str) -> dict[str, Any]:
        return await self._running().seckill.end(room, sale)

    async def restock(self, room: str, sale: str, count: int) -> dict[str, Any]:
        return await self._running().seckill.restock(room, sale, count)

    async def confirm_order(
        self, room: str, hold: str, *, order_id: str | None = None
    ) -> dict[str, Any]:
        """The host was paid for `hold`. Idempotent; RequestRefused(hold_expired, ...)."""
        return await self._running().seckill.confirm_order(room, hold, order_id=order_id)

    async def cancel_order(self, room: str, hold: str, *, reason: str = "") -> dict[str, Any]:
        """The host cancels an unpaid hold; its stock goes back at once. Idempotent."""
        return await self._running().seckill.cancel_order(room, hold, reason=reason)

    async def seckill_status(self, room: str, sale: str) -> dict[str, Any]:
        """A sale's settings and counters (stock, left, held, sold, ...)."""
        return await self._running().seckill.status(room, sale)

    # --- rooms, reservations, shares, live numbers (see docs/control.md) ---------------------

    async def command(self, name: str, room: str | None = None, **params: Any) -> dict[str, Any]:
        """Run a control command by name, as an operator (the registry validates `params`).
        Raises EngineError with the command's error code."""
        return await self.control.call(OPERATOR, name, params, transport="embedded", room=room)

    async def create_room(
        self, room: str, *, title: str, anchor: str, **fields: Any
    ) -> dict[str, Any]:
        """Create a room: title, anchor, and optionally anchor_name, starts_at (ms), cover,
        preview. EngineError(room_exists)."""
        return await self._running().lifecycle.create(room, title=title, anchor=anchor, **fields)

    async def update_room(self, room: str, **fields: Any) -> dict[str, Any]:
        return await self._running().lifecycle.update(room, **fields)

    async def room_info(self, room: str) -> dict[str, Any]:
        return await self._running().lifecycle.get(room)

    async def start_room(self, room: str) -> dict[str, Any]:
        return await self._running().lifecycle.start(room)

    async def end_room(self, room: str) -> dict[str, Any]:
        return await self._running().lifecycle.end(room)

    async def set_rehearsal(self, room: str, on: bool) -> dict[str, Any]:
        """Rehearsal on: only staff tokens may be in the room (viewers are closed)."""
        return await self._running().lifecycle.rehearsal(room, on)

    async def stream_notice(self, room: str, state: Any, text: str | None = None) -> dict[str, Any]:
        """Tell every viewer the stream is `interrupted` or `resumed` (a `stream` popup)."""
        return await self._running().lifecycle.stream_notice(room, state, text)

    async def clear_popup(self, room: str) -> None:
        await self._running().popups.clear(room)

    async def reply(
        self,
        room: str,
        text: str,
        *,
        user: str,
        name: str | None = None,
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        """Post a chat message as the anchor `user`, optionally an @reply to `reply_to`."""
        services = self._running()
        anchor = Identity(user, room, Role.ANCHOR, expires_at=0.0, name=name)
        message = Danmaku(text=clean_text(text, "text", self.config.max_danmaku_chars),
                          reply_to=reply_to)  # fmt: skip
        return await services.chat.send(room, anchor, message, {})

    async def reserve(self, room: str, user: str, *, source: Any = "host") -> dict[str, Any]:
        return await self._running().reservations.reserve(room, user, source)

    async def cancel_reservation(
        self, room: str, user: str, *, source: Any = "host"
    ) -> dict[str, Any]:
        return await self._running().reservations.cancel(room, user, source)

    async def record_share(
        self,
        room: str,
        share_id: str,
        user: str,
        channel: str | None = None,
        batch: str | None = None,
    ) -> dict[str, Any]:
        """The host reports a share; idempotent by `share_id` (a share.recorded event once). A
        coupon of `batch` (or of the room's share coupon) is granted through the claim script."""
        return await self._running().shares.record(room, share_id, user, channel, batch)

    async def live_numbers(self, room: str) -> dict[str, Any]:
        """Online, peak, likes, danmaku rate and total, running sales."""
        return await self._running().numbers.read(room)

    def mint_token(self, user: str, room: str, role: Role | str = Role.VIEWER, **kw: Any) -> str:
        """Sign a token with this node's first key (dev tooling and tests; hosts sign their own)."""
        return mint_token(self.keys, user=user, room=room, role=role, **kw)

    async def _health(self) -> dict[str, object]:
        services = self._services
        if services is None:
            return {"ok": False, "node": self.node_id, "redis": "not running"}
        try:
            with trio.move_on_after(1):
                await services.store.ping()
                return {"ok": True, "node": self.node_id, "connections": self.stats.connections}
        except Exception as exc:  # health reports any failure rather than raising it
            return {"ok": False, "node": self.node_id, "redis": str(exc)}
        return {"ok": False, "node": self.node_id, "redis": "timeout"}


def _address(
    config: Config, node_id: str, ws_port: int, http_port: int, redis_url: str
) -> NodeAddress:
    host = config.host if config.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return NodeAddress(
        node_id=node_id,
        ws_url=config.public_ws_url or f"ws://{host}:{ws_port}/v1/ws",
        http_url=f"http://{host}:{http_port}",
        control_url=f"ws://{host}:{http_port}/v1/control",
        ws_port=ws_port,
        http_port=http_port,
        redis_url=redis_url,
    )


def _public(address: NodeAddress) -> dict[str, object]:
    return {"node": address.node_id, "ws_url": address.ws_url, "http_url": address.http_url}


def _need(feature: _F | None) -> _F:
    if feature is None:
        raise RuntimeError("the engine is not running: start Engine.serve first")
    return feature


def _both(first: Any, second: Any) -> Any:
    """Two fan-out popup hooks as one (either may be None)."""
    if second is None:
        return first

    def hook(room: str, item: dict[str, Any]) -> None:
        first(room, item)
        second(room, item)

    return hook
