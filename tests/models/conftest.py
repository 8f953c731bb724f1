"""Fixtures for the server tests: a raw HTTP client that sends exactly the bytes and headers a test asks for
(urllib would fix up a bad Content-Length) and reads the reply with a timeout, so a hung handler fails the test
instead of hanging it; and a factory for loopback servers with chosen limits."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest


def raw_request(url: str, body: bytes = b"", headers: dict[str, str] | list | None = None, timeout_s: float = 10.0,
                path: str = "/v1/completions", half_close: bool = True) -> tuple[int, dict | None, bytes]:
    """POST ``body`` with exactly ``headers`` (a dict, or (name, value) pairs to repeat a header; no
    Content-Length unless given) -> (status, JSON body or None, raw reply).

    ``half_close`` ends the client's side after sending, so a server that waits for more bytes sees EOF.
    Raises socket.timeout if no full reply comes within ``timeout_s``.
    """
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in dict_items(headers)]
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(payload), reply
    except ValueError:
        return status, None, reply


def dict_items(headers) -> list:
    return list(headers.items()) if isinstance(headers, dict) else list(headers or [])


def post(url: str, payload, timeout_s: float = 30.0) -> tuple[int, dict | None]:
    """POST a JSON payload with a correct Content-Length -> (status, JSON reply)."""
    data = json.dumps(payload).encode()
    status, body, _ = raw_request(url, data, {"Content-Type": "application/json", "Content-Length": str(len(data))},
                                  timeout_s=timeout_s)
    return status, body


@pytest.fixture(scope="session")
def http_client():
    """``http_client.raw(url, body, headers)`` and ``http_client.post(url, payload)``; see `raw_request`."""
    return SimpleNamespace(raw=raw_request, post=post)


@pytest.fixture(scope="module")
def tiny_hf(tiny_model_dir):
    from pcdrl.models.backends.base import BackendConfig
    from pcdrl.models.backends.hf import HFBackend

    return HFBackend(BackendConfig(model=tiny_model_dir))


@pytest.fixture
def make_server():
    """``make_server(backend, **limits) -> (server, engine, url)``; every server is stopped after the test."""
    from pcdrl.models.server import ServerLimits, serve_in_thread

    servers = []

    def start(backend, **limits):
        server, url = serve_in_thread(backend, limits=ServerLimits(**limits))
        servers.append(server)
        return server, server.engine, url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
