"""The ``sentinel://`` URLs kombu and Celery accept, as coder_ring's own clients read
them (the bad ones: tests/system/test_bad_inputs_settings.py)."""

from __future__ import annotations

import pytest

from coder_ring.redis_urls import SentinelTarget, is_sentinel, parse_sentinel_url
from coder_ring.urls import redact_url


def test_every_sentinel_and_the_first_urls_database_and_user() -> None:
    url = "sentinel://app:p%40ss@s1:26380/3;sentinel://s2;sentinel://app:p%40ss@s3:1"
    assert is_sentinel(url) and is_sentinel(" SENTINEL://s1") and not is_sentinel("redis://h")
    assert parse_sentinel_url(url) == SentinelTarget(
        (("s1", 26380), ("s2", 26379), ("s3", 1)), db=3, username="app", password="p@ss"
    )
    assert parse_sentinel_url("sentinel://s1") == SentinelTarget((("s1", 26379),))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sentinel://s1;", "an empty sentinel"),
        ("sentinel://s1;redis://s2", "'redis://s2' is not a sentinel:// URL"),
        ("sentinel://s1:port", "does not parse"),
        ("sentinel://:26379", "names no host"),
        ("sentinel://s1/zero", "database 'zero' is not a number"),
        ("sentinel://s1/0?master_name=m", "has a query"),
        ("sentinel://u:pw@s1/1;sentinel://s2/2", "another database or user"),
        ("sentinel://s1;sentinel://u:pw@s2", "another database or user"),
    ],
)
def test_a_bad_sentinel_url_says_what_is_wrong_and_the_form(url: str, shown: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_sentinel_url(url)
    assert shown in str(refused.value) and "pw" not in str(refused.value)
    assert "sentinel://[USER:PASSWORD@]HOST[:PORT][/DB]" in str(refused.value) or (
        "first" in str(refused.value)
    )


def test_a_list_of_urls_shows_no_password() -> None:
    url = "sentinel://u:pw1@s1:26379/0;sentinel://u:pw2@s2:26379"
    assert redact_url(url) == "sentinel://u:***@s1:26379/0;sentinel://u:***@s2:26379"
