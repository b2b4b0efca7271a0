"""The wire protocol, pure and I/O-free: codecs, client message validation, server messages."""

from engine.protocol.client import (
    CLIENT_TYPES,
    ClientMessage,
    Danmaku,
    Leave,
    Like,
    Limits,
    Pin,
    Ping,
    Unpin,
    decode_client_message,
    parse_client_message,
    to_wire,
)
from engine.protocol.codec import CODECS, JSON, MSGPACK, Codec, choose_codec

__all__ = [
    "CLIENT_TYPES",
    "CODECS",
    "JSON",
    "MSGPACK",
    "ClientMessage",
    "Codec",
    "Danmaku",
    "Leave",
    "Like",
    "Limits",
    "Pin",
    "Ping",
    "Unpin",
    "choose_codec",
    "decode_client_message",
    "parse_client_message",
    "to_wire",
]
