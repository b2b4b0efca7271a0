"""Reservations of a scheduled room and the reminders before it starts.

Viewers reserve over the gateway (`reserve` / `unreserve`), the host over the control plane on a
user's behalf. Each new reservation writes `reservation.created`; `reminder_lead_s` before the
start, the scheduler runs the room's reminder pass (job kind `reminders`), which writes one
`reminder.due` per reservation for the host to notify. The pass runs in batches inside Lua and
skips users already reminded, so a node dying mid-pass, a second node or a restart never loses or
doubles a reminder; a reservation made after the reminder time is reminded at once, in the
same script that records it.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog

from engine.scheduler import Job
from engine.store.rooms import RoomStore

log = structlog.get_logger("engine.reservations")

Source = Literal["viewer", "host"]
REMINDER_BATCH = 500


class Reservations:
    def __init__(self, rooms: RoomStore, *, batch: int = REMINDER_BATCH) -> None:
        self._rooms = rooms
        self._batch = batch

    async def reserve(self, room: str, user: str, source: Source = "host") -> dict[str, Any]:
        new, count, reminded, starts_at = await self._rooms.reserve(room, user, source)
        return {"room": room, "user": user, "reserved": True, "new": new, "reservations": count,
                "starts_at": int(starts_at) if starts_at else None,
                "reminded": reminded}  # fmt: skip

    async def cancel(self, room: str, user: str, source: Source = "host") -> dict[str, Any]:
        removed, count = await self._rooms.cancel_reservation(room, user, source)
        return {"room": room, "user": user, "reserved": False, "new": removed,
                "reservations": count, "starts_at": None, "reminded": False}  # fmt: skip

    async def run_reminders(self, job: Job) -> None:
        """The scheduler's handler for a room's reminder pass."""
        starts_at = str(job.args["starts_at"])
        total = 0
        while True:
            emitted, left = await self._rooms.emit_reminders(job.room, starts_at, self._batch)
            total += emitted
            if left <= 0:
                break
        log.info("reminders written", room=job.room, reminders=total, stale=left < 0)
