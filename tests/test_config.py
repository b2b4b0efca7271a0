from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config, fields_doc, markdown_table


def test_defaults_env_and_overrides_in_that_order() -> None:
    env = {"ENGINE_WS_PORT": "9100", "ENGINE_DEV": "yes", "ENGINE_CHAT_TICK_MS": "50"}
    config = Config.from_env(env, chat_tick_ms=25)
    assert config.ws_port == 9100 and config.dev is True and config.chat_tick_ms == 25
    assert Config.from_env({}).ws_port == Config().ws_port


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENGINE_WS_PORT": "many"}, "ENGINE_WS_PORT='many' is not a valid int"),
        ({"ENGINE_DEV": "maybe"}, "ENGINE_DEV='maybe' is not a valid bool"),
    ],
)
def test_bad_env_values_say_which_and_why(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_env(env)


def test_key_set_parsing() -> None:
    assert Config(token_keys="a:" + "x" * 32 + ", b:" + "y" * 32).key_set() == {
        "a": b"x" * 32,
        "b": b"y" * 32,
    }
    with pytest.raises(ValueError, match="shorter than 32"):
        Config(token_keys="a:short").key_set()
    with pytest.raises(ValueError, match="not 'kid:secret'"):
        Config(token_keys="nocolon").key_set()


def test_configuration_doc_is_generated_from_the_config() -> None:
    doc = Path(__file__).parent.parent / "docs" / "configuration.md"
    assert doc.read_text() == markdown_table(), (
        "run: engine config --markdown > docs/configuration.md"
    )


def test_every_setting_is_documented() -> None:
    for name, env, _default, help_text in fields_doc():
        assert env == "ENGINE_" + name.upper() and len(help_text) > 10
