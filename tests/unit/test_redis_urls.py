"""The ``sentinel://`` URLs kombu and Celery accept: how coder_ring reads them, what its
own clients and its Celery app make of them (the bad settings:
tests/system/test_bad_inputs_settings.py; a failover: tests/ha/)."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from coder_ring.celery.app import create_app
from coder_ring.redis_urls import SentinelTarget, is_sentinel, parse_sentinel_url
from coder_ring.registry.client import SentinelRedis, registry_client
from coder_ring.settings import WorkerSettings
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


SENTINELS = "sentinel://app:pw@s1:26380/2;sentinel://s2:26381"


def test_the_registry_client_asks_the_sentinels_with_the_plain_clients_limits() -> None:
    settings = WorkerSettings(redis_url=SENTINELS, sentinel_master="primary")
    client = registry_client(settings, 0.5, connect_timeout=0.25)  # connects to nothing yet
    try:
        assert isinstance(client, SentinelRedis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "primary"
        kwargs = pool.connection_kwargs
        assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (2, "app", "pw")
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.5, 0.25)
        assert kwargs["retry"].get_retries() == 0
        asked = [s.connection_pool.connection_kwargs for s in client.sentinels.sentinels]
        assert [(k["host"], k["port"], k["socket_timeout"]) for k in asked] == [
            ("s1", 26380, 0.5),
            ("s2", 26381, 0.5),
        ]
    finally:
        client.close()


def test_the_celery_app_gives_kombu_and_celery_the_primarys_name() -> None:
    settings = WorkerSettings(
        broker_url=SENTINELS, result_backend=SENTINELS, redis_url=SENTINELS, sentinel_master="p"
    )
    app = create_app(settings)
    try:
        assert app.conf.broker_transport_options["master_name"] == "p"
        backend = app.conf.result_backend_transport_options
        assert backend["master_name"] == "p" and backend["sentinel_kwargs"]["socket_timeout"] > 0
    finally:
        app.close()
    plain = create_app(WorkerSettings())
    assert "master_name" not in plain.conf.broker_transport_options
    plain.close()
