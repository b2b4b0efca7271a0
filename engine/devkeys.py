"""Development token keys: with `--dev` and no key set configured, the node generates one under
`data_dir` and `engine token` signs with it. Never used unless dev mode is on."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from engine.config import Config

DEV_KID = "dev"


def dev_key_path(config: Config) -> Path:
    return Path(config.data_dir) / "dev-keys.json"


def resolve_keys(config: Config) -> dict[str, bytes]:
    """The configured key set; in dev mode without one, the (created on first use) dev key."""
    keys = config.key_set()
    if keys or not config.dev:
        return keys
    path = dev_key_path(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({DEV_KID: secrets.token_hex(32)}, f)
    stored = json.loads(path.read_text())
    return {kid: secret.encode() for kid, secret in stored.items()}
