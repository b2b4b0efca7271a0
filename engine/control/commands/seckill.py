"""Products and flash sales (engine/features/products.py, seckill_node.py): the product list,
product cards, flash sales and the host's order confirmations. The handlers call the `Engine`
methods of that feature; the feature itself validates what the schemas below cannot say."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from engine.control.registry import (
    ADMIN,
    Call,
    Command,
    Millis,
    NoParams,
    Params,
    Result,
    ShortText,
    Title,
)
from engine.errors import ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine

ProductId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,64}$", description="a product id")]
SaleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$", description="a sale id")]
HoldId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}\.[0-9]{1,18}$",
                              description="a hold id, <sale>.<n>")]  # fmt: skip
Money = Annotated[int, Field(ge=0, le=10**12, description="in the currency's minor unit")]
ImageUrl = Annotated[str, Field(max_length=1024, pattern=r"^https?://\S+$")]


class ProductIn(Params):
    id: ProductId
    name: Title = Field(description="the product's name")
    image: ImageUrl = Field(description="image URL")
    price: Money = Field(description="the live price (minor units)")
    list_price: Money | None = Field(None, description="the list price (default: price)")
    stock: int = Field(ge=0, le=10**9, description="stock shown on the card")
    order: int | None = Field(None, ge=0, le=10**9, description="display order")
    promo: ShortText | None = Field(None, description="promotion tag, e.g. 2 for 1")


class SetProducts(Params):
    products: list[ProductIn] = Field(max_length=500, description="the room's product list")


class ProductParams(Params):
    product: ProductId


class StartSeckill(Params):
    product: ProductId
    price: Money = Field(description="the sale price (minor units)")
    stock: int = Field(ge=1, le=100_000_000, description="units for sale")
    limit: int = Field(1, ge=1, le=1_000_000, description="most units per user")
    start_at: Millis | None = Field(None, description="opens at (default now)")
    end_at: Millis | None = Field(None, description="closes at (give this or duration_s)")
    duration_s: float | None = Field(None, ge=1, le=7 * 86400, description="or: open this long")
    hold_s: float | None = Field(
        None, ge=1, le=86400, description="a grab's hold waits this long for the payment"
    )
    sale: SaleId | None = Field(None, description="the sale id (default: generated)")


class SaleParams(Params):
    sale: SaleId


class Restock(Params):
    sale: SaleId
    count: int = Field(ge=1, le=100_000_000, description="units to add")


class ConfirmOrder(Params):
    hold: HoldId
    order_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="the host's order id, kept with the sale"
    )


class CancelOrder(Params):
    hold: HoldId
    reason: Annotated[str, Field(max_length=200)] | None = Field(None, description="why")


class ProductOut(Result):
    id: str
    name: str
    image: str
    list_price: int
    price: int
    stock: int
    order: int
    promo: str = ""


class ProductList(Result):
    products: list[ProductOut]


class Card(Result):
    id: str | None = None
    name: str | None = None
    price: int | None = None
    image: str | None = None
    stock: int | None = None


class Cards(Result):
    mounted: list[Card]
    pinned: str | None = None


class Clicks(Result):
    clicks: dict[str, int] = Field(description="product id -> clicks on its card")


class Sale(Result):
    sale: str
    product: str
    name: str | None = None
    image: str | None = None
    list_price: int | None = None
    price: int
    stock: int
    left: int
    limit: int
    start_at: int
    end_at: int


class SaleEnded(Result):
    sale: str
    already: bool
    left: int
    stock: int


class Stock(Result):
    sale: str
    left: int
    stock: int


class Settled(Result):
    hold: str
    sale: str
    user: str
    qty: int
    already: bool


class SaleStatus(Result):
    model_config = ConfigDict(extra="allow")  # the sale hash may grow fields

    sale: str
    product: str | None = None
    state: str | None = None
    price: int | None = None
    stock: int | None = None
    left: int | None = None
    held: int | None = None
    sold: int | None = None
    granted: int | None = None
    limit: int | None = None
    start: int | None = None
    end: int | None = None


async def _set_products(engine: Engine, call: Call) -> Any:
    items = [p.model_dump(exclude_none=True) for p in call.params.products]
    return {"products": await engine.set_products(call.room, items)}


async def _get_products(engine: Engine, call: Call) -> Any:
    return {"products": await engine.get_products(call.room)}


async def _mount(engine: Engine, call: Call) -> Any:
    return await engine.mount_product(call.room, call.params.product)


async def _unmount(engine: Engine, call: Call) -> Any:
    return await engine.unmount_product(call.room, call.params.product)


async def _pin(engine: Engine, call: Call) -> Any:
    return await engine.pin_product(call.room, call.params.product)


async def _unpin(engine: Engine, call: Call) -> Any:
    return await engine.unpin_product(call.room)


async def _clicks(engine: Engine, call: Call) -> Any:
    return {"clicks": await engine.product_clicks(call.room)}


async def _start(engine: Engine, call: Call) -> Any:
    settings = call.params.model_dump(exclude_none=True)
    return await engine.start_seckill(call.room, settings.pop("product"), **settings)


async def _end(engine: Engine, call: Call) -> Any:
    return await engine.end_seckill(call.room, call.params.sale)


async def _restock(engine: Engine, call: Call) -> Any:
    return await engine.restock(call.room, call.params.sale, call.params.count)


async def _confirm(engine: Engine, call: Call) -> Any:
    return await engine.confirm_order(call.room, call.params.hold, order_id=call.params.order_id)


async def _cancel(engine: Engine, call: Call) -> Any:
    return await engine.cancel_order(call.room, call.params.hold, reason=call.params.reason or "")


async def _status(engine: Engine, call: Call) -> Any:
    return await engine.seckill_status(call.room, call.params.sale)


_PRODUCT = (ErrorCode.UNKNOWN_PRODUCT,)
_SALE = (ErrorCode.UNKNOWN_SALE,)
_HOLD = (ErrorCode.UNKNOWN_HOLD, ErrorCode.UNKNOWN_SALE, ErrorCode.HOLD_EXPIRED)


def commands() -> list[Command]:
    return [
        Command("set_products", "Replace the room's product list (name, image, price, stock).",
                SetProducts, ProductList, _set_products,
                doc="Prices in the currency's minor unit. Mounted cards are refreshed; cards "
                    "of products no longer listed are taken down."),
        Command("get_products", "The room's product list.", NoParams, ProductList, _get_products,
                read_only=True, path="/rooms/{room}/products"),
        Command("mount_product", "Show a product's card to every viewer.", ProductParams, Cards,
                _mount, errors=_PRODUCT, doc="Viewers get a `product_card` popup."),
        Command("unmount_product", "Take a product's card down.", ProductParams, Cards,
                _unmount, errors=_PRODUCT),
        Command("pin_product", "Pin a product's card (mounting it if needed).", ProductParams,
                Cards, _pin, errors=_PRODUCT),
        Command("unpin_product", "Unpin the pinned product card.", NoParams, Cards, _unpin),
        Command("product_clicks", "Clicks on each product's card.", NoParams, Clicks, _clicks,
                read_only=True, path="/rooms/{room}/clicks"),
        Command("start_seckill", "Start a flash sale on a product.", StartSeckill, Sale, _start,
                errors=(ErrorCode.UNKNOWN_PRODUCT, ErrorCode.SALE_EXISTS),
                doc="Viewers get a `seckill` popup with the countdown and stock; they `grab`. "
                    "Give `end_at` or `duration_s`. Writes `seckill.started`."),
        Command("end_seckill", "Stop a flash sale now.", SaleParams, SaleEnded, _end,
                errors=_SALE, doc="Holds stay until confirmed, cancelled or expired."),
        Command("restock", "Add units to a running flash sale.", Restock, Stock, _restock,
                errors=(ErrorCode.UNKNOWN_SALE, ErrorCode.ENDED)),
        Command("seckill_status", "A flash sale's settings and counters.", SaleParams,
                SaleStatus, _status, errors=_SALE),
        Command("confirm_order", "The host was paid for a hold: its units are sold.",
                ConfirmOrder, Settled, _confirm, roles=ADMIN,
                errors=(*_HOLD, ErrorCode.HOLD_CANCELLED),
                doc="Idempotent (`already`). Writes `seckill.confirmed`."),
        Command("cancel_order", "The host cancels an unpaid hold: its units go back.",
                CancelOrder, Settled, _cancel, roles=ADMIN,
                errors=(*_HOLD, ErrorCode.ALREADY_CONFIRMED),
                doc="Idempotent (`already`). Writes `seckill.cancelled`."),
    ]  # fmt: skip
