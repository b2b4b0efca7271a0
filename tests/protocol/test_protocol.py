"""The wire protocol as pure code: round trips in both codecs, validation, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ErrorCode, ProtocolError
from engine.protocol import (
    CLIENT_TYPES,
    CODECS,
    JSON,
    MSGPACK,
    Danmaku,
    Leave,
    Like,
    Limits,
    Pin,
    Ping,
    Unpin,
    choose_codec,
    decode_client_message,
    to_wire,
)
from engine.protocol import server as srv
from engine.protocol.client import Claim, Click, Follow, Grab, LotteryEnter, Reserve, Unreserve
from engine.protocol.wsframe import count_frames, data_frame, encode_frame

LIMITS = Limits(max_message_bytes=4096, max_text_chars=200, max_likes=100)

# printable text without surrogates/control characters, as a client would send
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co", "Zl", "Zp")),
    min_size=1,
    max_size=200,
).filter(lambda t: t.strip() == t and t.strip())
rids = st.none() | st.integers(-(2**52), 2**52) | st.text(min_size=1, max_size=64)
user_ids = st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,64}\Z")

client_messages = st.one_of(
    st.builds(Danmaku, text=texts, rid=rids),
    st.builds(Danmaku, phrase=st.integers(0, 10_000), rid=rids),
    st.builds(Danmaku, text=texts, reply_to=user_ids, rid=rids),
    st.builds(Like, count=st.integers(1, 100), rid=rids),
    st.builds(Ping, rid=rids),
    st.builds(Pin, text=texts, rid=rids),
    st.builds(Unpin, rid=rids),
    st.builds(Leave, rid=rids),
    st.builds(
        Grab,
        sale=st.from_regex(r"\A[A-Za-z0-9_-]{1,48}\Z"),
        rid=st.integers(-(2**52), 2**52) | st.text(min_size=1, max_size=64),
        qty=st.integers(1, 99),
        room=st.none() | user_ids,
    ),
    st.builds(Click, product=user_ids, rid=rids),
    st.builds(Reserve, rid=rids),
    st.builds(Unreserve, rid=rids),
    st.builds(
        Claim,
        batch=st.from_regex(r"\A[A-Za-z0-9_-]{1,48}\Z"),
        rid=st.integers(-(2**52), 2**52) | st.text(min_size=1, max_size=64),
    ),
    st.builds(Follow, rid=rids),
    st.builds(LotteryEnter, lottery=st.from_regex(r"\A[A-Za-z0-9_-]{1,48}\Z"), rid=rids),
)


@settings(max_examples=300)
@given(message=client_messages, codec=st.sampled_from(sorted(CODECS)))
def test_every_client_message_round_trips_in_both_codecs(message: Any, codec: str) -> None:
    c = CODECS[codec]
    wire = c.encode(to_wire(message))
    assert decode_client_message(c, wire, LIMITS) == message


def test_every_client_type_is_covered_by_the_round_trip() -> None:
    assert {"danmaku", "like", "ping", "pin", "unpin", "leave", "grab", "click", "reserve",
            "unreserve", "claim", "follow", "lottery_enter"} == CLIENT_TYPES  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=50)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip

server_messages = st.one_of(
    st.builds(
        srv.chat,
        st.lists(
            st.builds(
                srv.chat_item,
                msg_id=st.text(min_size=1, max_size=20),
                user=user_ids,
                name=st.text(max_size=32),
                text=texts,
                ts=st.integers(0, 2**45),
                role=st.sampled_from(["viewer", "anchor", "admin"]),
                reply_to=st.none() | st.builds(lambda u: {"user": u}, user_ids),
            ),
            max_size=20,
        ),
    ),
    st.builds(srv.likes, st.integers(0, 2**62)),
    st.builds(srv.online, st.integers(0, 2**31)),
    st.builds(
        lambda item: srv.popup(item),
        st.builds(
            srv.popup_item,
            popup_id=st.text(min_size=1, max_size=20),
            kind=st.sampled_from(["product", "seckill", "coupon", "lottery", "notice"]),
            data=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
            ts=st.integers(0, 2**45),
            ttl_s=st.none() | st.floats(0, 3600),
        ),
    ),
    st.builds(srv.pinned, st.none() | st.fixed_dictionaries({"id": st.text(), "text": texts})),
    st.builds(lambda rid: srv.result(rid, ok=True, id="x"), rids),
    st.builds(lambda rid: srv.result(rid, ok=False, code="sold_out"), rids),
    st.builds(srv.pong, rids, st.integers(0, 2**45)),
    st.builds(srv.error, st.sampled_from(list(ErrorCode)), st.text(max_size=80), rids),
    st.builds(
        lambda snap: srv.welcome(
            room="r", user="u", role="viewer", conn="c", node="n", snapshot=snap,
            heartbeat_s=15.0, limits={"max_message_bytes": 4096},
        ),
        st.builds(
            srv.snapshot,
            online=st.integers(0, 10**6),
            likes=st.integers(0, 10**9),
            pinned=st.none(),
            popup=st.none(),
            phrases=st.lists(st.fixed_dictionaries({"id": st.integers(0, 49), "text": texts}), max_size=5),
        ),
    ),
)  # fmt: skip


@settings(max_examples=300)
@given(message=server_messages, codec=st.sampled_from(sorted(CODECS)))
def test_every_server_message_round_trips_in_both_codecs(
    message: dict[str, Any], codec: str
) -> None:
    c = CODECS[codec]
    assert message["type"] in srv.SERVER_TYPES
    assert c.decode(c.encode(message)) == message


@settings(max_examples=500)
@given(data=st.binary(max_size=512) | st.text(max_size=512), codec=st.sampled_from(sorted(CODECS)))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(
    data: bytes | str, codec: str
) -> None:
    try:
        decode_client_message(CODECS[codec], data, LIMITS)
    except ProtocolError as exc:
        assert exc.code in ErrorCode
    # decoding successfully is also fine (hypothesis may find a valid message)


hostile_objects = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300) | st.binary(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "rid", "text", "phrase", "reply_to", "count", "sale", "qty", "product", "batch", "lottery", "x"]), inner, max_size=6
    ),
    max_leaves=12,
)  # fmt: skip


# maps that look like client messages (a known type) with hostile field values
typed_hostile = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CLIENT_TYPES)) | st.text(max_size=5)},
    optional=dict.fromkeys(["rid", "text", "phrase", "reply_to", "count", "sale", "qty", "room", "product", "batch", "lottery"], hostile_objects),
)  # fmt: skip


@settings(max_examples=800)
@given(obj=hostile_objects | typed_hostile)
def test_arbitrary_objects_never_raise_anything_but_protocol_error(obj: Any) -> None:
    for codec in (JSON, MSGPACK):
        try:
            wire = codec.encode(obj)
        except (TypeError, OverflowError, ValueError):
            continue  # not representable in this codec, so no client could send it
        try:
            decode_client_message(codec, wire, LIMITS)
        except ProtocolError as exc:
            assert exc.code in ErrorCode


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ([1, 2], ErrorCode.BAD_FRAME),
        ({"text": "x"}, ErrorCode.BAD_FIELD),
        ({"type": 5}, ErrorCode.BAD_FIELD),
        ({"type": "dance"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "danmaku"}, ErrorCode.BAD_FIELD),
        ({"type": "danmaku", "text": "a", "phrase": 1}, ErrorCode.BAD_FIELD),
        ({"type": "danmaku", "text": "   "}, ErrorCode.BAD_FIELD),
        ({"type": "danmaku", "text": "x" * 201}, ErrorCode.TOO_LARGE),
        ({"type": "danmaku", "text": "bell\x07"}, ErrorCode.BAD_FIELD),
        ({"type": "danmaku", "phrase": True}, ErrorCode.BAD_FIELD),
        ({"type": "danmaku", "text": "a", "reply_to": ""}, ErrorCode.BAD_FIELD),
        ({"type": "like", "count": 0}, ErrorCode.BAD_FIELD),
        ({"type": "like", "count": 101}, ErrorCode.BAD_FIELD),
        ({"type": "like", "count": True}, ErrorCode.BAD_FIELD),
        ({"type": "like", "rid": {"a": 1}}, ErrorCode.BAD_FIELD),
        ({"type": "like", "rid": "r" * 65}, ErrorCode.BAD_FIELD),
        ({"type": "pin"}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "sale": "s1"}, ErrorCode.BAD_FIELD),  # no rid: no idempotency key
        ({"type": "grab", "rid": 1}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "a.b"}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "s" * 49}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "s1", "qty": 0}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "s1", "qty": 100}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "s1", "qty": 1.5}, ErrorCode.BAD_FIELD),
        ({"type": "grab", "rid": 1, "sale": "s1", "room": "{x}"}, ErrorCode.BAD_FIELD),
        ({"type": "click"}, ErrorCode.BAD_FIELD),
        ({"type": "click", "product": ["p"]}, ErrorCode.BAD_FIELD),
        ({"type": "claim", "batch": "b1"}, ErrorCode.BAD_FIELD),  # no rid: no idempotency key
        ({"type": "claim", "rid": 1}, ErrorCode.BAD_FIELD),
        ({"type": "claim", "rid": 1, "batch": "b.1"}, ErrorCode.BAD_FIELD),
        ({"type": "claim", "rid": 1, "batch": "b" * 49}, ErrorCode.BAD_FIELD),
        ({"type": "lottery_enter"}, ErrorCode.BAD_FIELD),
        ({"type": "lottery_enter", "lottery": 7}, ErrorCode.BAD_FIELD),
    ],
)
def test_invalid_messages_get_their_stable_code(message: Any, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(JSON, JSON.encode(message), LIMITS)
    assert caught.value.code is code


def test_error_carries_the_request_id_it_answers() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(JSON, JSON.encode({"type": "like", "count": -1, "rid": "r1"}), LIMITS)
    assert caught.value.rid == "r1"


def test_oversize_message_is_too_large_before_decoding() -> None:
    big = JSON.encode({"type": "danmaku", "text": "x" * 5000})
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(JSON, big, LIMITS)
    assert caught.value.code is ErrorCode.TOO_LARGE


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    wire = JSON.encode({"type": "like", "count": 2, "future": [1, 2, 3]})
    assert decode_client_message(JSON, wire, LIMITS) == Like(count=2)


def test_codec_is_chosen_by_subprotocol_in_client_order() -> None:
    assert choose_codec(["msgpack", "json"]) == (MSGPACK, "msgpack")
    assert choose_codec(["json", "msgpack"]) == (JSON, "json")
    assert choose_codec(["x-unknown"]) == (JSON, None)
    assert choose_codec([]) == (JSON, None)


def test_frames_are_whole_websocket_frames() -> None:
    text = encode_frame(JSON, srv.likes(7))
    assert text[0] == 0x81 and text[1] == len(text) - 2  # FIN + text, unmasked, short length
    binary = encode_frame(MSGPACK, srv.likes(7))
    assert binary[0] == 0x82
    long = data_frame(b"x" * 70000, text=False)
    assert long[1] == 127 and int.from_bytes(long[2:10], "big") == 70000


@given(sizes=st.lists(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), max_size=6))
def test_count_frames_counts_whole_frames_of_every_length_form(sizes: list[int]) -> None:
    blob = b"".join(data_frame(b"x" * n, text=False) for n in sizes)
    assert count_frames(blob) == len(sizes)
    if blob:
        assert count_frames(blob[:-1]) == len(sizes) - 1  # a cut frame is not counted
