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
