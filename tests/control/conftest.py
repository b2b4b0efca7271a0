from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def socket_path() -> Iterator[str]:
    """A Unix socket path short enough for sun_path (pytest's tmp_path may not be)."""
    folder = tempfile.mkdtemp(prefix="ctl-", dir="/tmp")
    yield folder + "/control.sock"
    shutil.rmtree(folder, ignore_errors=True)
