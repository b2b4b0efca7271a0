"""Every Redis key and channel name, in one place.

Each key of a room carries the hash tag `{room}`, so one script only ever touches one hash slot
and the same scripts run unchanged on Redis Cluster. Room ids cannot contain braces
(`identity.valid_id`), so the tag is always the whole room id.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "live"
ROOMS_INDEX: Final = f"{PREFIX}:rooms"  # set of room ids that ever had a viewer (event consumers)


def _room(room: str, name: str) -> str:
    return f"{PREFIX}:{{{room}}}:{name}"


def state(room: str) -> str:
    """Hash: likes (total), pinned, popup, phrases (msgpack values)."""
    return _room(room, "state")


def online(room: str) -> str:
    """Hash: node id -> connections of this room on that node."""
    return _room(room, "online")


def events(room: str) -> str:
    """Stream: the room's host events (capped)."""
    return _room(room, "events")


def bus(room: str) -> str:
    """Pub/sub channel of the room's messages."""
    return _room(room, "bus")


def room_of(name: str | bytes) -> str:
    """The room id inside a room key or channel name."""
    if isinstance(name, bytes):
        name = name.decode()
    start, end = name.index("{"), name.index("}")
    return name[start + 1 : end]
