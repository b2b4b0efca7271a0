"""Room lifecycle: create (title, anchor, scheduled start, cover, preview text), update, start,
end, rehearsal mode and the stream interrupted / resumed notice.

A room's record lives in Redis (`RoomStore`); every change writes its host event in the same Lua
step (`room.created`, `room.updated`, `room.started`, `room.ended`, `room.rehearsal`). Viewers
learn about changes from popups: kind `room` (`{status}`) when the room starts or ends, kind
`stream` (`{state, text}`) for the interrupted / resumed notice.

Rehearsal: while it is on, only staff tokens (anchor, admin) may join. The gateway asks `admit`
at every join (answered from a per-node cache refreshed at most every ACCESS_CACHE_S), and the
node's pulse closes the non-staff viewers still in the room within about a second.

Rooms that were never created keep working as before (viewers, chat, popups); only the lifecycle
commands need a record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import trio

from engine.errors import AuthError, EngineError, ErrorCode
from engine.features.popups import Popups
from engine.identity import Identity
from engine.scheduler import Scheduler
from engine.store.rooms import RoomStore
from engine.store.store import now_ms

ACCESS_CACHE_S = 1.0
REMINDER_JOB = "reminders"  # job kind: the reminder pass of a room (features/reservations.py)
STREAM_KINDS = ("interrupted", "resumed")
RESUMED_NOTICE_TTL_S = 10.0

_INT_FIELDS = ("starts_at", "created_at", "started_at", "ended_at", "remind_at")
_PUBLIC_FIELDS = ("title", "anchor", "anchor_name", "cover", "preview")


def reminder_job_id(room: str) -> str:
    return f"{REMINDER_JOB}:{room}"


def room_info(room: str, record: dict[str, str], reservations: int = 0) -> dict[str, Any]:
    """The public shape of a room record (see RoomInfo in engine/control/commands/rooms.py)."""

    def number(name: str) -> int | None:
        value = record.get(name)
        return int(value) if value else None

    return {
        "room": room,
        "status": record.get("status", "scheduled"),
        "title": record.get("title", ""),
        "anchor": record.get("anchor", ""),
        "anchor_name": record.get("anchor_name") or None,
        "starts_at": number("starts_at"),
        "cover": record.get("cover") or None,
        "preview": record.get("preview") or None,
        "rehearsal": record.get("rehearsal") == "1",
        "created_at": number("created_at"),
        "started_at": number("started_at"),
        "ended_at": number("ended_at"),
        "reservations": reservations,
    }


class RoomLifecycle:
    def __init__(
        self,
        rooms: RoomStore,
        popups: Popups,
        scheduler: Scheduler,
        *,
        reminder_lead_s: float,
        evict: Callable[[str], int] | None = None,
    ) -> None:
        self._rooms = rooms
        self._popups = popups
        self._scheduler = scheduler
        self._lead_ms = int(reminder_lead_s * 1000)
        self.evict = evict  # closes this node's non-staff viewers of a room (set when wired)
        self._access: dict[str, tuple[bool, float]] = {}  # room -> (rehearsal, cached until)

    # --- reading -------------------------------------------------------------------------

    async def get(self, room: str) -> dict[str, Any]:
        record = await self._rooms.get(room)
        if record is None:
            raise EngineError(f"room {room!r} does not exist", code=ErrorCode.ROOM_NOT_FOUND)
        return room_info(room, record, await self._rooms.reservation_count(room))

    # --- changing ------------------------------------------------------------------------

    async def create(
        self,
        room: str,
        *,
        title: str,
        anchor: str,
        anchor_name: str | None = None,
        starts_at: int | None = None,
        cover: str | None = None,
        preview: str | None = None,
    ) -> dict[str, Any]:
        now = now_ms()
        record = {"status": "scheduled", "rehearsal": "0", "created_at": str(now),
                  "title": title, "anchor": anchor}  # fmt: skip
        optional = {"anchor_name": anchor_name, "cover": cover, "preview": preview}
        record.update({k: v for k, v in optional.items() if v})
        if starts_at is not None:
            record["starts_at"] = str(starts_at)
            record["remind_at"] = str(starts_at - self._lead_ms)
        public = {k: v for k, v in record.items() if k in _PUBLIC_FIELDS}
        if not await self._rooms.create(room, record, {**public, "starts_at": starts_at}):
            raise EngineError(f"room {room!r} exists already", code=ErrorCode.ROOM_EXISTS)
        if starts_at is not None:
            await self._schedule_reminders(room, starts_at)
        return room_info(room, record)

    async def update(
        self,
        room: str,
        *,
        title: str | None = None,
        anchor_name: str | None = None,
        starts_at: int | None = None,
        cover: str | None = None,
        preview: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields (an empty string clears cover, preview or anchor_name)."""
        fields = {k: v for k, v in {"title": title, "anchor_name": anchor_name, "cover": cover,
                                    "preview": preview}.items() if v is not None}  # fmt: skip
        if starts_at is not None:
            fields["starts_at"] = str(starts_at)
            fields["remind_at"] = str(starts_at - self._lead_ms)
        if not fields:
            return await self.get(room)
        data: dict[str, Any] = {k: v for k, v in fields.items() if k != "remind_at"}
        if starts_at is not None:
            data["starts_at"] = starts_at
        await self._rooms.update(room, fields, data)
        if starts_at is not None:
            await self._schedule_reminders(room, starts_at)
        return await self.get(room)

    async def start(self, room: str) -> dict[str, Any]:
        await self._rooms.transition(room, "start")
        self._forget_access(room)
        await self._popups.push(room, "room", {"status": "live"})
        await self._scheduler.cancel(reminder_job_id(room))
        return await self.get(room)

    async def end(self, room: str) -> dict[str, Any]:
        await self._rooms.transition(room, "end")
        self._forget_access(room)
        await self._popups.push(room, "room", {"status": "ended"})
        await self._scheduler.cancel(reminder_job_id(room))
        return await self.get(room)

    async def rehearsal(self, room: str, on: bool) -> dict[str, Any]:
        await self._rooms.transition(room, "rehearsal_on" if on else "rehearsal_off")
        self._access[room] = (on, trio.current_time() + ACCESS_CACHE_S)
        if on and self.evict is not None:
            self.evict(room)  # this node at once; the others within a pulse
        return await self.get(room)

    async def stream_notice(
        self, room: str, state: Literal["interrupted", "resumed"], text: str | None = None
    ) -> dict[str, Any]:
        """Tell every viewer the stream is interrupted (the popup stays for later joiners until
        the stream resumes) or resumed (shown for RESUMED_NOTICE_TTL_S)."""
        if state not in STREAM_KINDS:
            raise ValueError(f"state must be one of {', '.join(STREAM_KINDS)}")
        data: dict[str, Any] = {"state": state}
        if text:
            data["text"] = text
        ttl = RESUMED_NOTICE_TTL_S if state == "resumed" else None
        return await self._popups.push(room, "stream", data, ttl_s=ttl)

    async def _schedule_reminders(self, room: str, starts_at: int) -> None:
        due = max(starts_at - self._lead_ms, 0)
        args = {"starts_at": str(starts_at)}
        await self._scheduler.schedule(reminder_job_id(room), REMINDER_JOB, room, due, args)

    # --- the gateway's question ----------------------------------------------------------

    async def admit(self, identity: Identity) -> None:
        """Let `identity` join its room, or raise AuthError (code `rehearsal`)."""
        if identity.role.is_staff:
            return
        room, now = identity.room, trio.current_time()
        cached = self._access.get(room)
        if cached is None or cached[1] < now:
            if len(self._access) > 10_000:
                self._access = {r: c for r, c in self._access.items() if c[1] >= now}
            cached = (await self._rooms.rehearsal(room), now + ACCESS_CACHE_S)
            self._access[room] = cached
        if cached[0]:
            raise AuthError("the room is in rehearsal: staff only", code=ErrorCode.REHEARSAL)

    def seen_rehearsal(self, room: str, on: bool) -> None:
        """The pulse read the room's rehearsal flag: refresh the cache, enforce it here."""
        self._access[room] = (on, trio.current_time() + ACCESS_CACHE_S)
        if on and self.evict is not None:
            self.evict(room)

    def _forget_access(self, room: str) -> None:
        self._access.pop(room, None)
