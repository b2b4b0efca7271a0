"""Server-to-client WebSocket frames, built once and written to many sockets.

Server frames are never masked and we negotiate no extensions, so one frame's bytes are valid on
every connection: the broadcaster builds a frame once per codec and fans the same bytes out.
Framing itself is wsproto's.
"""

from __future__ import annotations

from typing import Any, Final

from wsproto.frame_protocol import FrameProtocol

from engine.protocol.codec import Codec

_SERVER: Final = FrameProtocol(client=False, extensions=[])

PING_FRAME: Final = bytes(_SERVER.ping(b""))


def data_frame(payload: bytes, *, text: bool) -> bytes:
    """One whole (fin) text or binary frame around `payload`."""
    return bytes(_SERVER.send_data(payload.decode("utf-8") if text else payload, fin=True))


def encode_frame(codec: Codec, message: dict[str, Any]) -> bytes:
    """A server message as a complete frame in `codec`."""
    return data_frame(codec.encode(message), text=codec.text_frames)


def count_frames(data: bytes) -> int:
    """How many whole server frames `data` holds end to end (a replay blob, for the counters)."""
    count, i, end = 0, 0, len(data)
    while i + 2 <= end:
        length, i = data[i + 1] & 0x7F, i + 2
        if length == 126:
            length, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        i += length
        if i > end:
            break
        count += 1
    return count
