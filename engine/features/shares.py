"""Share-for-coupon: the host reports that a user shared the room (`share_recorded`).

Idempotent by the host's share id: the first report writes a `share.recorded` event, repeats
change nothing and say so (`new: false`). The coupon feature will grant the configured coupon
here once it lands; until then `coupon` is always null.
"""

from __future__ import annotations

from typing import Any

from engine.store.rooms import RoomStore


class Shares:
    def __init__(self, rooms: RoomStore) -> None:
        self._rooms = rooms

    async def record(
        self, room: str, share_id: str, user: str, channel: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"share_id": share_id, "user": user}
        if channel:
            data["channel"] = channel
        new = await self._rooms.record_share(room, share_id, data)
        return {"room": room, "share_id": share_id, "user": user, "new": new, "coupon": None}
