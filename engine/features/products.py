"""Products: a room's preset product list, the product cards the anchor mounts, unmounts and pins
during the live (each change pushed to viewers as a `product_card` popup), and viewers' clicks on
cards (counted for the statistics; the first click of a user on a product is a `product.clicked`
host event).

A card shows the name, price, image and stock only: the details are the host's. Prices are
integers in the currency's minor unit (fen, cents).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from engine.errors import ErrorCode, RequestRefused
from engine.features.popups import Popups
from engine.store.seckill import SeckillStore

PRODUCT_ID: Final = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
MAX_PRODUCTS: Final = 500
MAX_NAME_CHARS: Final = 100
MAX_URL_CHARS: Final = 1024
MAX_PROMO_CHARS: Final = 32
MAX_PRICE: Final = 10**12
MAX_STOCK: Final = 10**9
CARD_POPUP_TTL_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    image: str
    list_price: int
    price: int  # the live price
    stock: int
    order: int  # display order (ascending)
    promo: str = ""  # promotion tag, e.g. "2 for 1"

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "price": self.price, "image": self.image,
                "stock": self.stock}  # fmt: skip


def _bad(message: str) -> RequestRefused:
    return RequestRefused(message, code=ErrorCode.BAD_FIELD)


def _text(item: Mapping[str, Any], name: str, max_chars: int, *, required: bool = True) -> str:
    value = item.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_chars:
        raise _bad(f"product {name} must be a string of {int(required)}..{max_chars} characters")
    if any(ord(ch) < 32 for ch in value):
        raise _bad(f"product {name} contains control characters")
    return value.strip()


def _count(item: Mapping[str, Any], name: str, high: int, default: int | None = None) -> int:
    value = item.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise _bad(f"product {name} must be an integer 0..{high}")
    return value


def parse_product(item: Any, index: int) -> Product:
    if not isinstance(item, Mapping):
        raise _bad(f"product #{index} is not an object")
    pid = item.get("id")
    if not isinstance(pid, str) or not PRODUCT_ID.match(pid):
        raise _bad(f"product #{index}: id must be 1..64 of [A-Za-z0-9_.:@-]")
    image = _text(item, "image", MAX_URL_CHARS)
    if not image.startswith(("https://", "http://")):
        raise _bad(f"product {pid}: image must be an http(s) URL")
    price = _count(item, "price", MAX_PRICE)
    return Product(
        id=pid,
        name=_text(item, "name", MAX_NAME_CHARS),
        image=image,
        list_price=_count(item, "list_price", MAX_PRICE, default=price),
        price=price,
        stock=_count(item, "stock", MAX_STOCK),
        order=_count(item, "order", 10**9, default=index),
        promo=_text(item, "promo", MAX_PROMO_CHARS, required=False),
    )


def parse_products(items: Any) -> list[Product]:
    """Validate a whole product list (ids unique). Raises RequestRefused(bad_field)."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise _bad("products must be a list")
    if len(items) > MAX_PRODUCTS:
        raise _bad(f"at most {MAX_PRODUCTS} products per room")
    products = [parse_product(item, i) for i, item in enumerate(items)]
    ids = [p.id for p in products]
    if len(set(ids)) != len(ids):
        raise _bad("product ids must be unique")
    return products


def cards_view(raw: Any) -> dict[str, Any]:
    """The room's `cards` state as viewers get it in their snapshot."""
    if not isinstance(raw, Mapping):
        return {"mounted": [], "pinned": None}
    mounted = raw.get("mounted")
    return {
        "mounted": [_card(c) for c in mounted if isinstance(c, Mapping)]
        if isinstance(mounted, list)
        else [],
        "pinned": raw.get("pinned") or None,
    }


def _card(card: Mapping[str, Any]) -> dict[str, Any]:
    return {k: card.get(k) for k in ("id", "name", "price", "image", "stock")}


class Products:
    """The room's product list, cards and clicks (I/O through `SeckillStore`)."""

    def __init__(self, store: SeckillStore, popups: Popups) -> None:
        self._store = store
        self._popups = popups

    async def set_products(self, room: str, items: Any) -> list[dict[str, Any]]:
        """Replace the room's product list (before the live); mounted cards are refreshed, and
        cards of products no longer listed are taken down."""
        products = parse_products(items)
        await self._store.set_products(room, [asdict(p) for p in products])
        return [asdict(p) for p in sorted(products, key=lambda p: (p.order, p.id))]

    async def products(self, room: str) -> list[dict[str, Any]]:
        return await self._store.products(room)

    async def card(self, room: str, action: str, product: str = "") -> dict[str, Any]:
        """mount | unmount | pin | unpin a product card; viewers get a `product_card` popup.
        Returns the room's cards state."""
        if action not in ("mount", "unmount", "pin", "unpin"):
            raise _bad(f"unknown card action {action!r}")
        if action != "unpin" and (not isinstance(product, str) or not PRODUCT_ID.match(product)):
            raise _bad("product must be a product id")
        code, cards, card = await self._store.card(room, action, product)
        if code != "ok":
            raise RequestRefused(f"no product {product!r} in this room", code=ErrorCode(code))
        cards = cards_view(cards)
        data: dict[str, Any] = {"action": action, "product": product or None, "cards": cards}
        if card is not None:
            data["card"] = _card(card)
        await self._popups.push(room, "product_card", data, ttl_s=CARD_POPUP_TTL_S)
        return cards

    async def click(self, room: str, product: str, user: str) -> int:
        """Count a click; returns the product's click total. RequestRefused(unknown_product)."""
        clicks, _first = await self._store.click(room, product, user)
        if clicks < 0:
            raise RequestRefused(
                f"no product {product!r} in this room", code=ErrorCode.UNKNOWN_PRODUCT
            )
        return clicks

    async def clicks(self, room: str) -> dict[str, int]:
        return await self._store.clicks(room)
