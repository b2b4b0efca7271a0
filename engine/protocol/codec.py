"""Codecs, chosen per connection by WebSocket subprotocol: `json` (orjson, text frames) or
`msgpack` (binary frames). Decoding never raises anything but `ProtocolError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgpack
import orjson

from engine.errors import ErrorCode, ProtocolError

# Bounds for msgpack so a hostile 4 KiB frame cannot ask for a 2 GiB array.
_MSGPACK_LIMITS: Final = {
    "max_str_len": 65536,
    "max_bin_len": 65536,
    "max_array_len": 1024,
    "max_map_len": 256,
    "max_ext_len": 0,
}


class Codec:
    """Encodes server messages and decodes client messages for one wire format."""

    __slots__ = ()
    name: str = ""
    text_frames: bool = False

    def encode(self, message: Any) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes | str) -> Any:
        raise NotImplementedError

    def decode(self, data: bytes | str) -> Any:
        try:
            return self._decode(data)
        except Exception as exc:  # the decoder boundary: anything a codec raises is bad input
            raise ProtocolError(
                f"not valid {self.name}: {type(exc).__name__}", code=ErrorCode.BAD_FRAME
            ) from None


class JsonCodec(Codec):
    __slots__ = ()
    name = "json"
    text_frames = True

    def encode(self, message: Any) -> bytes:
        return orjson.dumps(message)

    def _decode(self, data: bytes | str) -> Any:
        return orjson.loads(data)


class MsgpackCodec(Codec):
    __slots__ = ()
    name = "msgpack"
    text_frames = False

    def encode(self, message: Any) -> bytes:
        return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]

    def _decode(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        return msgpack.unpackb(data, raw=False, strict_map_key=True, **_MSGPACK_LIMITS)


JSON: Final = JsonCodec()
MSGPACK: Final = MsgpackCodec()
CODECS: Final[dict[str, Codec]] = {JSON.name: JSON, MSGPACK.name: MSGPACK}
DEFAULT_CODEC: Final = JSON


def choose_codec(proposed: Sequence[str]) -> tuple[Codec, str | None]:
    """Pick the first subprotocol the client proposed that we speak.

    Returns the codec and the subprotocol to echo in the handshake (None when the client proposed
    none we know: it then gets JSON, the default, and no subprotocol header).
    """
    for name in proposed:
        codec = CODECS.get(name.strip().lower())
        if codec is not None:
            return codec, name
    return DEFAULT_CODEC, None
