"""Flash sales on one node: stock to viewers (once per tick), the sold-out announcement, the
expiry sweeper, and the host/anchor operations (start, end, restock, confirm, cancel). Grabs go
through the batcher (`seckill_batch`). Every decision on shared state is a Lua script
(`SeckillStore`); this module only decides when to call them and who is told what.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import structlog
import trio

from engine.config import Config
from engine.errors import ErrorCode, RequestRefused, StoreUnavailable
from engine.features.popups import Popups
from engine.features.seckill import (
    MAX_STOCK,
    StockView,
    hold_sale,
    refuse,
    sale_spec,
    stock_key,
    stock_message,
    valid_sale_id,
)
from engine.features.seckill_batch import GrabBatcher, Reply, SaleKey, SeckillStats
from engine.store.seckill import SeckillStore
from engine.store.store import Store

log = structlog.get_logger("engine.seckill")

SWEEP_BATCH = 500
SOLD_OUT_POPUP_TTL_S = 60.0
FORGET_AFTER_S = 600.0  # a sale untouched this long is forgotten by the node (not by Redis)


class Seckill:
    def __init__(
        self,
        config: Config,
        store: SeckillStore,
        room_store: Store,
        popups: Popups,
        *,
        node_id: str,
        tick_s: float,
    ) -> None:
        self._config = config
        self._store = store
        self._room_store = room_store
        self._popups = popups
        self._node_id = node_id
        self._tick_s = max(tick_s, config.seckill_stock_interval_s)
        self._views: dict[SaleKey, StockView] = {}  # newest stock this node has seen
        self._published: dict[SaleKey, int] = {}  # version this node last published
        self._due: set[SaleKey] = set()
        self._touched: dict[SaleKey, float] = {}
        self._nursery: trio.Nursery | None = None
        self.stats = SeckillStats()
        self.batcher = GrabBatcher(config, store, self.stats, on_view=self.observe,
                                   on_sold_out=self._sold_out)  # fmt: skip

    def grab(self, room: str, sale: str, user: str, rid: str | int, qty: int, reply: Reply) -> None:
        """Queue one grab; `reply` is called exactly once with its answer (see GrabBatcher)."""
        self.batcher.grab(room, sale, user, rid, qty, reply)

    def add_flusher(self, flush: Callable[[], None]) -> None:
        self.batcher.add_flusher(flush)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.batcher.start(nursery)
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._sweep_loop)
            task_status.started()

    # --- grabs ---------------------------------------------------------------------------

    def observe(self, room: str, sale: str, view: StockView) -> None:
        """A stock view read from Redis: viewers get it at the next tick if it is news, and the
        sold-out shortcut learns from it."""
        key = (room, sale)
        current = self._views.get(key)
        if current is None or view.ver > current.ver:
            self._views[key] = view
            self._due.add(key)
        self._touched[key] = trio.current_time()
        self.batcher.observe(room, sale, view)

    def _sold_out(self, room: str, sale: str, view: StockView) -> None:
        # the popup carries the stock: no separate stock frame for this version
        key = (room, sale)
        self._published[key] = max(self._published.get(key, -1), view.ver)
        self._spawn(self._announce_sold_out, room, sale, view)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    # --- what viewers see ----------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(self._tick_s)
            await self.publish_stock()

    async def publish_stock(self) -> None:
        """Tell the room (every node) the newest stock of each sale that changed since the last
        tick: one message per sale and tick, however many grabs."""
        due, self._due = self._due, set()
        for key in due:
            view = self._views.get(key)
            if view is None or self._published.get(key, -1) >= view.ver:
                continue
            room, sale = key
            message = {"k": "counter", "key": stock_key(sale), "v": view.ver,
                       "m": stock_message(sale, view)}  # fmt: skip
            try:
                await self._room_store.publish(room, message)
                self._published[key] = view.ver
            except StoreUnavailable as exc:
                self._due.add(key)
                log.warning("stock update not published", room=room, sale=sale, error=str(exc))

    async def _announce_sold_out(self, room: str, sale: str, view: StockView) -> None:
        """The grab that took the last unit was decided on this node: say it once, with the
        stock (one frame to every viewer instead of a popup and a stock frame)."""
        try:
            info = await self._store.sale_info(room, sale)
            data = {"sale": sale, "product": info.get("product"), "left": view.left,
                    "stock": view.stock, "ver": view.ver}  # fmt: skip
            await self._popups.push(room, "sold_out", data, ttl_s=SOLD_OUT_POPUP_TTL_S)
        except StoreUnavailable as exc:
            log.warning("sold-out popup not pushed", room=room, sale=sale, error=str(exc))
            self._published.pop((room, sale), None)  # the stock frame goes instead
            self._due.add((room, sale))

    # --- the expiry sweeper --------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        interval = self._config.seckill_sweep_interval_s
        while True:
            await trio.sleep(interval)
            try:
                if await self._store.take_sweep_lease(self._node_id, int(interval * 3000)):
                    await self.sweep()
            except StoreUnavailable as exc:
                log.warning("seckill sweep failed", error=str(exc))
            self._forget_idle()

    async def sweep(self) -> int:
        """Release expired holds (and close ended sales) of every unfinished sale. Returns the
        number of holds released. Safe on several nodes at once (each release is one script)."""
        released = 0
        retention = int(self._config.seckill_retention_s)
        for room, sale in await self._store.indexed_sales():
            while True:
                n, left, stock, ver, more, finished = await self._store.release(
                    room, sale, max_holds=SWEEP_BATCH, retention_s=retention
                )
                released += n
                if left >= 0:
                    self.observe(room, sale, StockView(left, stock, ver))
                if finished:
                    await self._store.unindex_sale(room, sale)
                    break
                if not more:
                    break
        self.stats.released += released
        return released

    def _forget_idle(self) -> None:
        now = trio.current_time()
        for key, when in list(self._touched.items()):
            if now - when > FORGET_AFTER_S and not self.batcher.busy(key):
                self._touched.pop(key, None)
                self.batcher.forget(key)
                self._views.pop(key, None)
                self._published.pop(key, None)

    # --- host and anchor operations ------------------------------------------------------

    async def start(
        self,
        room: str,
        *,
        product: str,
        price: int,
        stock: int,
        limit: int = 1,
        start_at: int | None = None,
        end_at: int | None = None,
        duration_s: float | None = None,
        hold_s: float | None = None,
        sale: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a flash sale; viewers get a `seckill` popup (countdown and stock). Times are ms
        since the epoch. Returns the sale as viewers see it."""
        spec = sale_spec(
            sale=sale or "s" + secrets.token_hex(6),
            product=product,
            price=price,
            stock=stock,
            limit=limit,
            start_ms=start_at,
            end_ms=end_at,
            duration_s=duration_s,
            hold_s=self._config.seckill_hold_s if hold_s is None else hold_s,
            now=self._store.now_ms(),
        )
        info = await self._store.product(room, product)
        if info is None:
            raise refuse(ErrorCode.UNKNOWN_PRODUCT, f"no product {product!r} in this room")
        view = spec.view(info)
        await self._store.index_sale(room, spec.sale)  # first: a sale is never missed by sweeps
        code, left, total, ver = await self._store.start(room, spec, view, spec.event(), event_id)
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {spec.sale}")
        self.observe(room, spec.sale, StockView(left, total, ver))
        ttl = max(1.0, (spec.end_ms - self._store.now_ms()) / 1000)
        await self._popups.push(room, "seckill", view, ttl_s=ttl)
        log.info("flash sale started", room=room, sale=spec.sale, product=product, stock=stock)
        return view

    async def end(self, room: str, sale: str, *, event_id: str | None = None) -> dict[str, Any]:
        """Stop a sale now; viewers get a `seckill_ended` popup. Holds stay until confirmed,
        cancelled or expired."""
        _check_sale(sale)
        code, already, left, stock, _ver = await self._store.end(room, sale, event_id)
        if code != "ok":
            raise refuse(ErrorCode(code), f"no sale {sale!r} in this room")
        if not already:
            await self._popups.push(room, "seckill_ended", {"sale": sale, "left": left},
                                    ttl_s=SOLD_OUT_POPUP_TTL_S)  # fmt: skip
        return {"sale": sale, "already": already, "left": left, "stock": stock}

    async def restock(
        self, room: str, sale: str, count: int, *, event_id: str | None = None
    ) -> dict[str, Any]:
        """Add `count` units to a running sale (viewers see the stock at the next tick)."""
        _check_sale(sale)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_STOCK:
            raise refuse(ErrorCode.BAD_FIELD, f"count must be an integer 1..{MAX_STOCK}")
        code, left, stock, ver = await self._store.restock(room, sale, count, event_id)
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {sale}")
        self.observe(room, sale, StockView(left, stock, ver))
        return {"sale": sale, "left": left, "stock": stock}

    async def confirm_order(
        self, room: str, hold: str, *, order_id: str | None = None, event_id: str | None = None
    ) -> dict[str, Any]:
        """The host took the payment for `hold`: its units are sold (`seckill.confirmed`).
        Idempotent. Refused with hold_expired, hold_cancelled, unknown_hold, unknown_sale."""
        return await self._settle(room, hold, confirm=True, note=order_id or "", event_id=event_id)

    async def cancel_order(
        self, room: str, hold: str, *, reason: str = "", event_id: str | None = None
    ) -> dict[str, Any]:
        """The host cancels an unpaid hold: its units go back at once (`seckill.cancelled`).
        Idempotent. Refused with already_confirmed, hold_expired, unknown_hold, unknown_sale."""
        return await self._settle(room, hold, confirm=False, note=reason[:200], event_id=event_id)

    async def _settle(
        self, room: str, hold: str, *, confirm: bool, note: str, event_id: str | None
    ) -> dict[str, Any]:
        sale = hold_sale(hold)
        code, already, user, qty, left, stock, ver = await self._store.settle(
            room, sale, hold, confirm=confirm, note=note, event_id=event_id
        )
        if left >= 0:
            self.observe(room, sale, StockView(left, stock, ver))
        if code != "ok":
            raise refuse(ErrorCode(code), f"{code}: {hold}")
        return {"hold": hold, "sale": sale, "user": user, "qty": qty, "already": already}

    async def status(self, room: str, sale: str) -> dict[str, Any]:
        """A sale's settings and counters as Redis holds them."""
        _check_sale(sale)
        info = await self._store.sale_info(room, sale)
        if not info:
            raise refuse(ErrorCode.UNKNOWN_SALE, f"no sale {sale!r} in this room")
        out: dict[str, Any] = {"sale": sale}
        for name, value in info.items():
            out[name] = int(value) if value.lstrip("-").isdigit() else value
        return out


def _check_sale(sale: Any) -> None:
    if not valid_sale_id(sale):
        raise RequestRefused(f"{str(sale)[:60]!r} is not a sale id", code=ErrorCode.UNKNOWN_SALE)
