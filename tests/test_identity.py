"""Token verification (pure): every refusal has its stable code."""

from __future__ import annotations

import jwt
import pytest

from engine.errors import AuthError, ErrorCode
from engine.identity import Role, TokenVerifier, mint_token, valid_id
from tests.support import KEYS

VERIFY = TokenVerifier(KEYS, leeway_s=0)


def test_a_good_token_gives_the_identity() -> None:
    token = mint_token(KEYS, user="u1", room="r1", role="anchor", device="d-9", name="Ann")
    identity = VERIFY.verify(token, "r1")
    assert (identity.user, identity.room, identity.role) == ("u1", "r1", Role.ANCHOR)
    assert identity.device == "d-9" and identity.display_name == "Ann"


def test_keys_rotate_by_kid() -> None:
    for kid in KEYS:
        assert VERIFY.verify(mint_token(KEYS, user="u", room="r", kid=kid)).user == "u"


@pytest.mark.parametrize(
    ("token", "room", "code"),
    [
        (None, None, ErrorCode.BAD_TOKEN),
        ("", None, ErrorCode.BAD_TOKEN),
        ("garbage", None, ErrorCode.BAD_TOKEN),
        (mint_token(KEYS, user="u", room="r", ttl_s=-60), None, ErrorCode.TOKEN_EXPIRED),
        (mint_token({"test-a": b"x" * 40}, user="u", room="r"), None, ErrorCode.BAD_TOKEN),
        (mint_token({"other": b"x" * 40}, user="u", room="r"), None, ErrorCode.BAD_TOKEN),
        (mint_token(KEYS, user="u", room="r"), "elsewhere", ErrorCode.WRONG_ROOM),
        (mint_token(KEYS, user="bad{user}", room="r"), None, ErrorCode.BAD_TOKEN),
        (mint_token(KEYS, user="u", room="{r}"), None, ErrorCode.BAD_TOKEN),
        (jwt.encode({"sub": "u", "room": "r"}, KEYS["test-a"], headers={"kid": "test-a"}),
         None, ErrorCode.BAD_TOKEN),  # no exp
        (jwt.encode({"sub": "u", "room": "r", "exp": 2**40, "role": "root"}, KEYS["test-a"],
                    headers={"kid": "test-a"}), None, ErrorCode.BAD_TOKEN),
        (jwt.encode({"sub": "u", "room": "r", "exp": 2**40}, b"a" * 64, algorithm="HS512",
                    headers={"kid": "test-a"}), None, ErrorCode.BAD_TOKEN),  # alg not HS256
    ],
)  # fmt: skip
def test_bad_tokens_are_refused_with_their_code(
    token: str | None, room: str | None, code: ErrorCode
) -> None:
    with pytest.raises(AuthError) as caught:
        VERIFY.verify(token, room)
    assert caught.value.code is code


def test_ids_cannot_break_the_redis_hash_tag() -> None:
    assert valid_id("room-1:a_b.c@d")
    assert not valid_id("a{b}") and not valid_id("") and not valid_id("x" * 65) and not valid_id(3)


def test_an_empty_key_set_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="ENGINE_TOKEN_KEYS"):
        TokenVerifier({})
