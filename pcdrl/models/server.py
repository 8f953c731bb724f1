"""A small OpenAI-compatible completions server around an `HFBackend`, for users without vLLM.

    python -m pcdrl.models.server --model smollm2-135m-instruct --port 8000

Then ``BackendConfig(kind="http", model="smollm2-135m-instruct", base_url="http://127.0.0.1:8000/v1")``.
It serves ``GET /v1/models`` and ``POST /v1/completions`` with greedy decoding only (temperature 0;
a missing temperature means 0), ``echo`` + ``logprobs`` (prompt log-probs from the first forward pass), and
vLLM's ``min_tokens`` / ``ignore_eos``. Token strings tile the echoed text exactly (special tokens such as BOS
are zero-width), so ``text_offset`` indexes into ``text`` as OpenAI documents.

One client cannot hold the server: every request is held to `ServerLimits` (body size, prompts, tokens,
``max_tokens``, ``logprobs``, a wall-clock time limit), refused with a 4xx naming the field and the limit, and
the model lock is taken per forward pass, first come first served (`FairLock`), so a short request waits for
one decoding step of each request ahead of it, not for whole generations. It listens on loopback unless told
otherwise (`check_host`): it has no authentication and no TLS.

This module is the HTTP plumbing; the engine that generates and scores is pcdrl/models/server_engine.py, and the
limits and field checks are pcdrl/models/server_requests.py.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import traceback
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pcdrl.models.backends.base import BackendConfig
from pcdrl.models.backends.hf import HFBackend
from pcdrl.models.server_engine import Completion, CompletionEngine, FairLock
from pcdrl.models.server_requests import RequestError, ServerLimits, check_host, content_length, parse_limits

# What tests and callers import from here, the engine's and the request checks' names included.
__all__ = ["Completion", "CompletionEngine", "CompletionServer", "FairLock", "RequestError", "ServerLimits",
           "check_host", "content_length", "main", "parse_limits", "serve_in_thread"]


class _Handler(BaseHTTPRequestHandler):
    server: "CompletionServer"

    def setup(self):
        self.timeout = self.server.engine.limits.read_timeout_s  # every socket read; a stalled client gets dropped
        super().setup()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") == "/v1/models":
            name = self.server.engine.name
            return self._send(200, {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "pcd-rl"}]})
        self._error(RequestError(f"no route GET {self.path}; try /v1/models", 404, "not_found"))

    def do_POST(self):  # noqa: N802
        self.server.request_count += 1
        self.body_read = False
        try:
            if self.path.rstrip("/") != "/v1/completions":
                raise RequestError(f"no route POST {self.path}; try /v1/completions", 404, "not_found")
            body = self._read_json()
            if not self.server.slots.acquire(blocking=False):
                raise RequestError(f"the server is busy: {self.server.engine.limits.max_in_flight} requests are in "
                                   "progress (max_in_flight); retry after a pause", 503, "server_busy")
            try:
                reply = self.server.engine.complete(body)
            finally:
                self.server.slots.release()
        except RequestError as err:
            self._error(err)
            return None if self.body_read else self._linger()
        except Exception:  # noqa: BLE001 - a bug: log it here, and do not hand internals to the client
            self.log_error("completion failed:\n%s", traceback.format_exc())
            return self._error(RequestError("internal server error; the server's log has the traceback", 500,
                                            "server_error"))
        self._send(200, reply)

    def _read_json(self):
        if self.headers.get("Transfer-Encoding"):
            raise RequestError("Transfer-Encoding is not supported; send the body with a Content-Length header", 411)
        size = content_length(self.headers.get_all("Content-Length"), self.server.engine.limits.max_body_bytes)
        try:
            raw = self.rfile.read(size)
        except TimeoutError:
            raise RequestError(f"the body did not arrive within read_timeout_s={self.server.engine.limits.read_timeout_s:g} "
                               "s", 408, param="read_timeout_s") from None
        self.body_read = True
        if len(raw) < size:
            raise RequestError(f"the body ended after {len(raw)} of the {size} bytes its Content-Length announced")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as err:  # bad UTF-8 is a ValueError; deep nesting, RecursionError
            raise RequestError(f"the request body is not valid JSON: {str(err)[:200]}") from None

    def _linger(self):
        """After refusing a body it did not read: end our side, then drain for a moment, since closing a socket
        with unread bytes resets the connection, and the client may lose the error before reading it."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            until = time.monotonic() + 2.0
            while time.monotonic() < until and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _error(self, err: RequestError):
        if err.status >= 500 or self.server.verbose:
            self.log_message("%s -> %d: %s", self.requestline, err.status, err)
        # The body may be unread (a refused Content-Length): close rather than parse its bytes as a request.
        self.close_connection = True
        self._send(err.status, err.payload())

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client left; nothing to tell it
            self.close_connection = True

    def log_message(self, fmt, *args):  # quiet by default; errors still go through log_error
        if self.server.verbose:
            super().log_message(fmt, *args)

    def log_error(self, fmt, *args):
        super().log_message(fmt, *args)


class CompletionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, engine: CompletionEngine, verbose: bool = False):
        super().__init__(address, _Handler)
        self.engine, self.verbose, self.request_count = engine, verbose, 0
        self.slots = threading.BoundedSemaphore(engine.limits.max_in_flight)


def serve_in_thread(backend_or_model: HFBackend | str, port: int = 0, host: str = "127.0.0.1",
                    limits: ServerLimits | None = None, allow_remote: bool = False):
    """Start a server on a background thread; returns ``(server, base_url)``. Stop with ``server.shutdown()``."""
    check_host(host, allow_remote)
    backend = backend_or_model
    if isinstance(backend, str):
        backend = HFBackend(BackendConfig(kind="hf", model=backend))
    server = CompletionServer((host, port), CompletionEngine(backend, limits))
    threading.Thread(target=server.serve_forever, daemon=True, name="completions-server").start()
    return server, f"http://{host}:{server.server_address[1]}/v1"


def main(argv: list[str] | None = None) -> None:
    """Raises ValueError for a remote --host without --allow-remote, or a bad --limit (before the model loads)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="offline name, local folder or hub id")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other machines can reach (no authentication, no TLS)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--quantize", default="none", choices=["none", "int8", "bnb8", "bnb4"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help=f"raise or lower a request limit; NAME is one of "
                             f"{', '.join(f.name for f in fields(ServerLimits))}")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    limits = parse_limits(args.limit)
    warning = check_host(args.host, args.allow_remote)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    backend = HFBackend(BackendConfig(kind="hf", model=args.model, quantize=args.quantize, device=args.device))
    server = CompletionServer((args.host, args.port), CompletionEngine(backend, limits), verbose=args.verbose)
    print(f"serving {args.model} on http://{args.host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:
        sys.exit(f"python -m pcdrl.models.server: error: {err}")
