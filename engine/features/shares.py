"""Share-for-coupon: the host reports that a user shared the room (`share_recorded`).

Idempotent by the host's share id: the first report writes a `share.recorded` event, repeats
change nothing and say so (`new: false`). Share-for-coupon: when the call names a coupon batch,
or the room has a share coupon (`set_share_coupon`), the user is granted a coupon of it through
the coupon claim script (one per user and batch; the same share id always gets the same answer,
so a repeated report never grants twice). `coupon` is that grant, or null.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engine.store.rooms import RoomStore

# (room, share id, user, batch or None) -> the grant, or None when no coupon applies
ShareGrant = Callable[[str, str, str, str | None], Awaitable[dict[str, Any] | None]]


class Shares:
    def __init__(self, rooms: RoomStore, grant: ShareGrant | None = None) -> None:
        self._rooms = rooms
        self._grant = grant

    async def record(
        self,
        room: str,
        share_id: str,
        user: str,
        channel: str | None = None,
        batch: str | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"share_id": share_id, "user": user}
        if channel:
            data["channel"] = channel
        new = await self._rooms.record_share(room, share_id, data)
        coupon = None
        if self._grant is not None:  # after the record: a retried report grants what is due
            coupon = await self._grant(room, share_id, user, batch)
        return {"room": room, "share_id": share_id, "user": user, "new": new, "coupon": coupon}
