"""Viewer identity: HS256 JWTs signed by the host, verified with PyJWT against a key set.

The `kid` header picks the key, so a host rotates keys by adding the new kid, switching its
signer, and removing the old kid once the longest token lifetime has passed.
Claims: `sub` (user id), `room`, `role` (viewer | anchor | admin), `exp`, `iat`, optional
`device` (device id) and `name` (display name).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import jwt

from engine.errors import AuthError, ErrorCode

ALGORITHM: Final = "HS256"
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
MAX_NAME_CHARS: Final = 32


class Role(StrEnum):
    VIEWER = "viewer"
    ANCHOR = "anchor"
    ADMIN = "admin"

    @property
    def is_staff(self) -> bool:
        return self is not Role.VIEWER


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    room: str
    role: Role
    expires_at: float
    device: str | None = None
    name: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.user


def valid_id(value: object) -> bool:
    """Room and user ids: 1..64 of [A-Za-z0-9_.:@-]; no braces, so `{room}` stays a hash tag."""
    return isinstance(value, str) and ID_PATTERN.match(value) is not None


class TokenVerifier:
    """Verifies tokens against a fixed key set; pure apart from reading the clock."""

    __slots__ = ("_keys", "_leeway")

    def __init__(self, keys: Mapping[str, bytes], leeway_s: float = 5.0) -> None:
        if not keys:
            raise ValueError("the token key set is empty: set ENGINE_TOKEN_KEYS (or --dev)")
        self._keys = dict(keys)
        self._leeway = leeway_s

    def verify(self, token: str | None, room: str | None = None) -> Identity:
        """Return the identity in `token`, or raise `AuthError` with a stable code.

        `room`, when given (the room the client asked for in the URL), must match the token's."""
        if not token:
            raise AuthError("no token given", code=ErrorCode.BAD_TOKEN)
        claims = self._decode(token)
        user, token_room, role = claims.get("sub"), claims.get("room"), claims.get("role", "viewer")
        if not valid_id(user):
            raise AuthError("token sub is not a valid user id", code=ErrorCode.BAD_TOKEN)
        if not valid_id(token_room):
            raise AuthError("token room is missing or invalid", code=ErrorCode.BAD_TOKEN)
        if role not in Role.__members__.values():
            raise AuthError(f"token role {str(role)[:16]!r} is unknown", code=ErrorCode.BAD_TOKEN)
        if room is not None and room != token_room:
            raise AuthError("token is for another room", code=ErrorCode.WRONG_ROOM)
        device, name = claims.get("device"), claims.get("name")
        return Identity(
            user=str(user),
            room=str(token_room),
            role=Role(role),
            expires_at=float(claims["exp"]),
            device=device if valid_id(device) else None,
            name=name[:MAX_NAME_CHARS] if isinstance(name, str) and name.strip() else None,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}", code=ErrorCode.BAD_TOKEN) from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError(f"unknown key id {str(kid)[:32]!r}", code=ErrorCode.BAD_TOKEN)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired", code=ErrorCode.TOKEN_EXPIRED) from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}", code=ErrorCode.BAD_TOKEN) from None
        return claims


def mint_token(
    keys: Mapping[str, bytes],
    *,
    user: str,
    room: str,
    role: Role | str = Role.VIEWER,
    ttl_s: float = 3600,
    kid: str | None = None,
    device: str | None = None,
    name: str | None = None,
    now: float | None = None,
) -> str:
    """Sign a token the way a host would (dev tooling, tests and load tests use it)."""
    if not keys:
        raise ValueError("no signing key")
    kid = kid or next(iter(keys))
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        "room": room,
        "role": str(Role(role)),
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    if device:
        claims["device"] = device
    if name:
        claims["name"] = name
    return jwt.encode(claims, keys[kid], algorithm=ALGORITHM, headers={"kid": kid})
