"""Popups pushed by the server to every viewer of a room at once (product cards, flash sales,
coupons, lottery results: later features call `push`). The current popup is part of the room
snapshot, so a viewer who joins while it shows sees it too."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from engine.protocol import server
from engine.store.store import Store, now_ms

MAX_KIND_CHARS = 32


class Popups:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._prefix = secrets.token_hex(3)
        self._ids = itertools.count(1)

    async def push(
        self, room: str, kind: str, data: dict[str, Any], *, ttl_s: float | None = None
    ) -> dict[str, Any]:
        if not kind or len(kind) > MAX_KIND_CHARS:
            raise ValueError(f"popup kind must be 1..{MAX_KIND_CHARS} characters")
        item = server.popup_item(
            popup_id=f"p{self._prefix}{next(self._ids):x}",
            kind=kind,
            data=data,
            ts=now_ms(),
            ttl_s=ttl_s,
        )
        await self._store.set_state(room, "popup", item, {"k": "popup", "m": item})
        return item

    async def clear(self, room: str) -> None:
        """Forget the current popup for later joiners (viewers who saw it keep it)."""
        await self._store.set_state(room, "popup", None, {"k": "popup_cleared"})


def current_popup(item: dict[str, Any] | None, now: int) -> dict[str, Any] | None:
    """The stored popup, unless its ttl has passed."""
    if item is None:
        return None
    ttl = item.get("ttl")
    if ttl is not None and item["ts"] + ttl * 1000 < now:
        return None
    return item
