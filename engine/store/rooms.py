"""`RoomStore`: room records (lifecycle), reservations and reminders, shares and live numbers.

Every change goes through one Lua script (`scripts/lua/room_*.lua`, `reservation_*.lua`,
`reminders_emit.lua`, `share_record.lua`, `numbers_*.lua`) that writes the host event it reports
in the same step. Scripts answer refusals as tagged values (`room_not_found`, `bad_state`), which
this layer turns into `EngineError`s with those codes; coredis/OS errors become
`StoreUnavailable` at the same `translate_errors` boundary as the `Store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import coredis
import orjson

from engine.errors import EngineError, ErrorCode
from engine.store import keys
from engine.store.store import ScriptStore, new_event_id, now_ms, text, translate_errors

_SCRIPTS = (
    "room_create",
    "room_update",
    "room_transition",
    "reservation_add",
    "reservation_cancel",
    "reminders_emit",
    "share_record",
    "numbers_tick",
    "numbers_read",
)


def _refusal(reply: Sequence[Any], room: str) -> EngineError | None:
    """The error a script's tagged answer stands for, or None for 'ok'."""
    tag = text(reply[0])
    if tag == "ok":
        return None
    if tag == "room_not_found":
        return EngineError(f"room {room!r} does not exist", code=ErrorCode.ROOM_NOT_FOUND)
    status = text(reply[1]) if len(reply) > 1 else "?"
    return EngineError(f"room {room!r} is {status}", code=ErrorCode.BAD_STATE)


class RoomStore(ScriptStore):
    def __init__(self, redis: coredis.Redis[bytes], *, event_maxlen: int) -> None:
        super().__init__(redis, _SCRIPTS, event_maxlen=event_maxlen)

    def _event(self) -> list[Any]:
        """ARGV head of every event-writing script: cap, a fresh event id, now (ms)."""
        return [self._maxlen, new_event_id(), now_ms()]

    # --- the room record -----------------------------------------------------------------

    async def create(self, room: str, record: Mapping[str, str], data: dict[str, Any]) -> bool:
        """Create the record; False if the room exists (nothing changed)."""
        flat = [item for pair in record.items() for item in pair]
        created = await self._run(
            "room_create",
            [keys.info(room), keys.events(room)],
            [*self._event(), orjson.dumps(data), *flat],
        )
        if created:
            with translate_errors("sadd"):
                await self.redis.sadd(keys.ROOMS_INDEX, [room])  # event consumers find it
        return bool(created)

    async def update(self, room: str, fields: Mapping[str, str], data: dict[str, Any]) -> str:
        """Set fields ('' deletes one); returns the room's status."""
        flat = [item for pair in fields.items() for item in pair]
        reply = await self._run(
            "room_update",
            [keys.info(room), keys.events(room), keys.reminded(room), keys.reminder_queue(room)],
            [*self._event(), orjson.dumps(data), *flat],
        )
        if (error := _refusal(reply, room)) is not None:
            raise error
        return text(reply[1])

    async def transition(self, room: str, action: str) -> tuple[str, bool]:
        """start | end | rehearsal_on | rehearsal_off -> (status, rehearsal) after it."""
        reply = await self._run(
            "room_transition",
            [keys.info(room), keys.numbers(room), keys.events(room), keys.unique(room)],
            [*self._event(), action],
        )
        if (error := _refusal(reply, room)) is not None:
            raise error
        return text(reply[1]), text(reply[2]) == "1"

    async def get(self, room: str) -> dict[str, str] | None:
        with translate_errors("hgetall"):
            flat = await self.redis.hgetall(keys.info(room))
        if not flat:
            return None
        return {text(k): text(v) for k, v in flat.items()}

    async def rehearsal(self, room: str) -> bool:
        with translate_errors("hget"):
            return await self.redis.hget(keys.info(room), "rehearsal") == b"1"

    # --- reservations and reminders ------------------------------------------------------

    async def reserve(self, room: str, user: str, source: str) -> tuple[bool, int, bool, str]:
        """(new, reservations, reminded at once, starts_at) or EngineError."""
        reply = await self._run(
            "reservation_add",
            [keys.info(room), keys.reservations(room), keys.reminded(room), keys.events(room)],
            [*self._event(), user, source, room],
        )
        if (error := _refusal(reply, room)) is not None:
            raise error
        return bool(reply[1]), int(reply[2]), bool(reply[3]), text(reply[4])

    async def cancel_reservation(self, room: str, user: str, source: str) -> tuple[bool, int]:
        reply = await self._run(
            "reservation_cancel",
            [keys.info(room), keys.reservations(room), keys.events(room)],
            [*self._event(), user, source],
        )
        if (error := _refusal(reply, room)) is not None:
            raise error
        return bool(reply[1]), int(reply[2])

    async def reservation_of(self, room: str, user: str) -> int | None:
        """When `user` reserved (ms), or None."""
        with translate_errors("zscore"):
            score = await self.redis.zscore(keys.reservations(room), user)
        return None if score is None else int(score)

    async def reservation_count(self, room: str) -> int:
        with translate_errors("zcard"):
            return int(await self.redis.zcard(keys.reservations(room)))

    async def emit_reminders(self, room: str, starts_at: str, batch: int) -> tuple[int, int]:
        """One batch of the reminder pass: (emitted, left); left -1 = the job is stale."""
        emitted, left = await self._run(
            "reminders_emit",
            [keys.info(room), keys.reservations(room), keys.reminded(room),
             keys.reminder_queue(room), keys.events(room)],
            [self._maxlen, now_ms(), starts_at, batch, room],
        )  # fmt: skip
        return int(emitted), int(left)

    # --- shares --------------------------------------------------------------------------

    async def record_share(self, room: str, share_id: str, data: dict[str, Any]) -> bool:
        """True when the share id is new (a share.recorded event was written)."""
        cap, event_id, now = self._event()
        new = await self._run(
            "share_record",
            [keys.shares(room), keys.events(room)],
            [cap, event_id, now, share_id, orjson.dumps(data)],
        )
        with translate_errors("sadd"):
            await self.redis.sadd(keys.ROOMS_INDEX, [room])
        return bool(new)

    # --- live numbers --------------------------------------------------------------------

    async def numbers_tick(self, room: str, now_s: int, danmaku: int) -> tuple[int, int, bool]:
        """This node's report: (online, peak, rehearsal)."""
        online, peak, rehearsal = await self._run(
            "numbers_tick",
            [keys.numbers(room), keys.present(room), keys.info(room)],
            [now_s, danmaku, now_ms()],
        )
        return int(online), int(peak), bool(rehearsal)

    async def numbers(self, room: str, now_s: int, window_s: int) -> tuple[int, int, int, int, int]:
        """(online, peak, likes, danmaku in the window, danmaku total)."""
        reply = await self._run(
            "numbers_read",
            [keys.numbers(room), keys.present(room), keys.state(room)],
            [now_s, window_s, now_ms()],
        )
        online, peak, likes, recent, total = (int(v) for v in reply)
        return online, peak, likes, recent, total
