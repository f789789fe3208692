"""The rings file (config.py) and the settings from the environment (settings.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from coder_ring import CoderRingError, ConfigError, RingConfig, Settings, load_rings
from coder_ring.config import RingsFile


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rings.toml"
    path.write_text(body, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_rings(path)
    assert isinstance(caught.value, CoderRingError)
    message = str(caught.value)
    assert str(path) in message, message
    return message


def test_the_issue_example_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[rings.widget]          # base_length 4 is the default
profanity_filter = true

[rings.doodad]
base_length = 1
pool_size = 8           # used by the worker

[rings.plain]
""",
    )
    assert load_rings(path) == {
        "widget": RingConfig("widget", base_length=4, profanity_filter=True, pool_size=256),
        "doodad": RingConfig("doodad", base_length=1, profanity_filter=False, pool_size=8),
        "plain": RingConfig("plain", base_length=4, profanity_filter=False, pool_size=256),
    }
    assert load_rings(str(path)) == load_rings(path)


def test_edge_values_are_accepted(tmp_path: Path) -> None:
    name = "a" + "b_9" * 13  # 40 characters
    path = write(tmp_path, f"[rings.{name}]\nbase_length = 4\npool_size = 0\n[rings.z]\n")
    rings = load_rings(path)
    assert rings[name] == RingConfig(name, base_length=4, pool_size=0)
    assert rings["z"] == RingConfig("z")


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ("base_lenght = 3", "base_lenght", None),
        ("profanity = true", "profanity", None),
        ('base_length = "4"', "base_length", "'4'"),
        ("base_length = true", "base_length", "True"),
        ("base_length = 4.0", "base_length", "4.0"),
        ('profanity_filter = "yes"', "profanity_filter", "'yes'"),
        ("profanity_filter = 1", "profanity_filter", "1"),
        ("pool_size = 1.5", "pool_size", "1.5"),
        ("pool_size = false", "pool_size", "False"),
        ("base_length = 0", "base_length", "0"),
        ("base_length = 9", "base_length", "9"),
        ("base_length = -1", "base_length", "-1"),
        ("pool_size = -1", "pool_size", "-1"),
        ("pool_size = 10001", "pool_size", "10001"),
    ],
)
def test_bad_key_or_value_names_file_ring_and_key(
    tmp_path: Path, body: str, key: str, value: str | None
) -> None:
    path = write(tmp_path, f"[rings.good]\n[rings.widget]\n{body}\n")
    message = config_error(path)
    assert "'widget'" in message
    assert f"'{key}'" in message
    if value is not None:
        assert value in message


def test_every_base_length_from_1_to_8_is_accepted(tmp_path: Path) -> None:
    body = "".join(f"[rings.r{length}]\nbase_length = {length}\n" for length in range(1, 9))
    rings = load_rings(write(tmp_path, body + "[rings.big]\npool_size = 10000\n"))
    assert [rings[f"r{length}"].base_length for length in range(1, 9)] == list(range(1, 9))
    assert rings["big"].pool_size == 10_000


@pytest.mark.parametrize(
    ("keywords", "shown"),
    [
        ({"base_length": 0}, "'base_length' must be from 1 to 8, got 0"),
        ({"base_length": 9}, "'base_length' must be from 1 to 8, got 9"),
        ({"pool_size": -1}, "'pool_size' must be from 0 to 10,000"),
        ({"pool_size": 10_001}, "got 10001"),
        ({"base_length": True}, "'base_length' must be int, got True"),
        ({"pool_size": False}, "'pool_size' must be int, got False"),
        ({"base_length": 4.0}, "got 4.0"),
        ({"profanity_filter": 1}, "'profanity_filter' must be bool, got 1"),
        ({"name": "Bad-Name"}, "invalid ring name 'Bad-Name'"),
        ({"name": ""}, "invalid ring name ''"),
        ({"name": 7}, "invalid ring name 7"),
    ],
)
def test_ring_config_built_in_python_is_checked(keywords: dict[str, object], shown: str) -> None:
    arguments: dict[str, object] = {"name": "widget", **keywords}
    with pytest.raises(ConfigError) as caught:
        RingConfig(**arguments)  # type: ignore[arg-type]
    assert shown in str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["Widget", "1widget", "wid-get", "_widget", "widget!", "", "wïdget", "a" * 41],
)
def test_invalid_ring_name_is_named(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, f'[rings."{name}"]\nbase_length = 2\n')
    message = config_error(path)
    assert repr(name) in message
    assert "lowercase letter first" in message


def test_duplicate_ring_table_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[rings.widget]\nbase_length = 1\n[rings.widget]\nbase_length = 2\n")
    message = config_error(path)
    assert "widget" in message
    assert "invalid TOML" in message


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[rings.widget]\nbase_length = 1\nbase_length = 2\n")
    message = config_error(path)
    assert "invalid TOML" in message
    assert "line 3" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[rings.widget\nbase_length = 1\n"))
    assert "invalid TOML" in message


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rings.toml"
    path.write_bytes(b"[rings.widget]\n# \xff\xfe\n")
    config_error(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nowhere" / "rings.toml")
    assert "cannot read rings file" in message
    assert "No such file or directory" in message
    assert "CODER_RING_CONFIG" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[ring.widget]\nbase_length = 1\n", "'ring'"),  # typo of the top-level table
        ("rings = 3\n", "'rings'"),
        ("[rings]\nwidget = 3\n", "'widget'"),
    ],
)
def test_wrong_document_shape(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in config_error(write(tmp_path, body))


def test_settings_from_environment(tmp_path: Path) -> None:
    assert Settings.from_env({}) == Settings("sqlite:///coder_ring.db", Path("config/rings.toml"))
    path = write(tmp_path, "[rings.doodad]\nbase_length = 1\n")
    settings = Settings.from_env(
        {"CODER_RING_DATABASE_URL": "postgresql://db/x", "CODER_RING_CONFIG": str(path)}
    )
    assert settings.database_url == "postgresql://db/x"
    assert settings.config_path == path
    assert settings.load_rings() == {"doodad": RingConfig("doodad", base_length=1)}


def edit(path: Path, body: str, stamp: int) -> None:
    """Write ``body`` with modification time ``stamp`` s: every edit is seen as one."""
    path.write_text(body, encoding="utf-8")
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))


def test_callers_keep_the_last_good_rings_and_warn_once_per_bad_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coder_ring.config")
    path = tmp_path / "rings.toml"
    rings = RingsFile(path)
    with pytest.raises(ConfigError, match="cannot read rings file"):
        rings.rings_or_last_good()  # never good in this process: today's error
    edit(path, "[rings.widget]\npool_size = -1\n", 1)
    with pytest.raises(ConfigError, match="'pool_size'"):
        rings.rings_or_last_good()
    good = "[rings.widget]\n[rings.doodad]\nbase_length = 1\n"
    edit(path, good, 2)
    first = rings.rings_or_last_good()
    assert set(first) == {"widget", "doodad"} and caplog.records == []

    edit(path, good + "[rings.gadget]\nbase_lenght = 2\n", 3)
    for _ in range(3):
        assert rings.rings_or_last_good() == first
    edit(path, good + "[rings.gadget]\nbase_lenght = 2\n", 4)  # the same content again
    assert rings.rings_or_last_good() == first
    (warned,) = [record.getMessage() for record in caplog.records]
    assert caplog.records[0].levelno == logging.WARNING and "\n" not in warned
    assert f"{path}: ring 'gadget': unknown key 'base_lenght'" in warned
    assert warned.endswith("callers go on with the rings as before: doodad, widget")
    with pytest.raises(ConfigError, match="base_lenght"):
        rings.rings()  # the worker's reading: the error, as before

    edit(path, good + "[rings.Bad-Name]\n", 5)  # another bad content: another warning
    assert rings.rings_or_last_good() == first
    path.unlink()  # and a file gone
    assert rings.rings_or_last_good() == first
    assert len(caplog.records) == 3
    assert "'Bad-Name'" in caplog.records[1].getMessage()
    assert "cannot read rings file" in caplog.records[2].getMessage()

    edit(path, good + "[rings.gadget]\nbase_length = 2\n", 6)  # fixed: picked up
    assert set(rings.rings_or_last_good()) == {"widget", "doodad", "gadget"}
    edit(path, good + "[rings.Bad-Name]\n", 7)  # a bad edit after a good one: told again
    assert set(rings.rings_or_last_good()) == {"widget", "doodad", "gadget"}
    assert len(caplog.records) == 4
