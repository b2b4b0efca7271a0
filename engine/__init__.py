"""The live-room interaction engine. Embedding API:

from engine import Engine, Config
async with trio.open_nursery() as nursery:
    address = await nursery.start(Engine(Config(redis_url=...)).serve)
    ...
    nursery.cancel_scope.cancel()   # shutdown is one cancel
"""

from engine.config import Config
from engine.node import Engine

__all__ = ["Config", "Engine"]
