"""The http backend sends the API key only where it cannot be read on the way: over https, or to a loopback host,
unless the config opts in (``api_key_over_http``)."""
from __future__ import annotations

import logging

import pytest

from pcdrl.models.backends import http as http_backend
from pcdrl.models.backends.base import BackendConfig, BackendError
from pcdrl.models.backends.http import HTTPBackend, is_loopback_host, may_send_api_key


@pytest.mark.parametrize("url, allowed", [
    ("https://api.example.com/v1", True),
    ("HTTPS://10.0.0.5:8443/v1", True),
    ("http://127.0.0.1:8000/v1", True),
    ("http://127.9.0.1:8000/v1", True),
    ("http://localhost:8000/v1", True),
    ("http://[::1]:8000/v1", True),
    ("http://10.0.0.5:8000/v1", False),
    ("http://0.0.0.0:8000/v1", False),  # reaches this host, but the name says "any interface"; no key
    ("http://api.example.com/v1", False),
    ("http://localhost.example.com/v1", False),
    ("http://127.0.0.1.example.com/v1", False),
    ("127.0.0.1:8000/v1", False),  # no scheme: urlsplit finds no host, so no key
])
def test_key_goes_only_over_https_or_to_loopback(url, allowed):
    assert may_send_api_key(url) is allowed
    assert may_send_api_key(url, over_http=True) is True


def test_loopback_names():
    assert all(map(is_loopback_host, ["localhost", "localhost.", "127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback_host, [None, "", "0.0.0.0", "::", "10.1.2.3", "example.com", "127.0.0.1x"]))


def config(url: str, **extra) -> BackendConfig:
    return BackendConfig(kind="http", model="judge", base_url=url, api_key_env="PCDRL_TEST_KEY", **extra)


def test_the_key_is_withheld_from_plain_http_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("PCDRL_TEST_KEY", "sk-secret")
    with caplog.at_level(logging.WARNING, logger="pcdrl.models.backends.http"):
        backend = HTTPBackend(config("http://10.0.0.5:8000/v1"))
    assert "Authorization" not in backend.headers
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "not sending $PCDRL_TEST_KEY to http://10.0.0.5:8000/v1" in message and "api_key_over_http" in message
    assert "sk-secret" not in message
    assert HTTPBackend(config("https://10.0.0.5/v1")).headers["Authorization"] == "Bearer sk-secret"
    assert HTTPBackend(config("http://127.0.0.1:8000/v1")).headers["Authorization"] == "Bearer sk-secret"


def test_opting_in_sends_the_key_over_plain_http(monkeypatch):
    monkeypatch.setenv("PCDRL_TEST_KEY", "sk-secret")
    opted = config("http://10.0.0.5:8000/v1", api_key_over_http=True)
    assert HTTPBackend(opted).headers["Authorization"] == "Bearer sk-secret"


def test_a_401_after_withholding_the_key_says_why(monkeypatch):
    monkeypatch.setenv("PCDRL_TEST_KEY", "sk-secret")
    backend = HTTPBackend(config("http://10.0.0.5:8000/v1", max_retries=0))

    def refuse(url, payload, headers, timeout_s):
        assert "Authorization" not in headers
        raise BackendError(f"{url} answered HTTP 401: missing bearer token")

    monkeypatch.setattr(http_backend, "post_json", refuse)
    with pytest.raises(BackendError, match=r"HTTP 401: missing bearer token \(the key in \$PCDRL_TEST_KEY was not "
                                           r"sent: .* plain http .*api_key_over_http: true"):
        backend.generate(["hi"], 2)
