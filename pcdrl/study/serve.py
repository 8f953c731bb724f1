"""Start or reopen a study and serve its pages.

`open_study` freezes a new study from an eval folder (config and item set go into the study's SQLite) or reopens
an existing one, refusing a config that differs from the frozen one. `StudyServer` runs the pages on a threaded
WSGI server; loopback only unless the caller allows another address (and then a warning says who can reach it).
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from pcdrl.models.backends.http import is_loopback_host
from pcdrl.runtime.config_loader import to_dict
from pcdrl.study.app import create_app
from pcdrl.study.config import StudyConfig
from pcdrl.study.items import read_eval_items, study_items
from pcdrl.study.store import DB_NAME, StudyStore, StudyStoreError


def default_study_dir(eval_dir: str | Path) -> Path:
    return Path(eval_dir) / "study"


def open_study(eval_dir: str | Path | None, study_dir: str | Path, cfg: StudyConfig | None) -> tuple[StudyStore, bool]:
    """The study in `study_dir` (created from `eval_dir` if it holds none yet) and whether it was just created.

    A config given for an existing study must equal the frozen one: a study's conditions and design cannot change
    halfway through its participants."""
    study_dir = Path(study_dir)
    if (study_dir / DB_NAME).is_file():
        store = StudyStore(study_dir)
        if cfg is not None and to_dict(cfg) != to_dict(store.config):
            frozen, given = to_dict(store.config), to_dict(cfg)
            changed = ", ".join(k for k in given if given[k] != frozen[k])
            store.close()
            raise StudyStoreError(f"{study_dir}: this study was started with another config ({changed} differ); a "
                                  "study's config is frozen when it starts. Drop the changes, or start a new study "
                                  "with --study NEW_FOLDER")
        return store, False
    if eval_dir is None:
        raise StudyStoreError(f"{study_dir}: no study there; start one with `pcdrl study serve EVAL_DIR --study "
                              f"{study_dir}`")
    if study_dir.exists() and any(study_dir.iterdir()):
        raise StudyStoreError(f"{study_dir}: exists and holds other files; a new study needs an empty or new folder "
                              "(give another --study)")
    cfg = cfg or StudyConfig()
    document, sha = read_eval_items(eval_dir)
    return StudyStore.create(study_dir, cfg, study_items(document, cfg), str(Path(eval_dir).resolve()), sha), True


def host_warning(host: str, allow_remote: bool) -> str | None:
    """None for loopback; a ValueError without `allow_remote`; else the warning to print."""
    if is_loopback_host(host):
        return None
    where = "every network interface" if host in ("", "0.0.0.0", "::") else host
    risk = (f"--host {host!r} listens on {where}: anyone who reaches it can take part and read the study's items, "
            "over plain HTTP (no TLS)")
    if not allow_remote:
        raise ValueError(f"{risk}. Keep the default --host 127.0.0.1 (participants on other machines can use a "
                         "tunnel: ssh -L 8100:127.0.0.1:8100 HOST), or pass --allow-remote to serve anyway")
    return f"warning: {risk}; serving anyway because --allow-remote was given"


def port_is_free(host: str, port: int) -> None:
    """A ValueError naming --port when another program listens there (port 0 always finds one)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ValueError(f"--port {port}: cannot listen on {host}:{port} ({err.strerror}); another program may "
                             "be using it: pass another --port, or --port 0 for any free one") from None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # simulated participants would flood the terminal
        pass


class StudyServer:
    """The study's pages on host:port (port 0: any free port), in a background thread or the foreground."""

    def __init__(self, store: StudyStore, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False,
                 quiet: bool = False):
        self.warning = host_warning(host, allow_remote)
        self.store = store
        self._server = make_server(host, port, create_app(store), threaded=True,
                                   request_handler=_QuietHandler if quiet else None)
        self.port = self._server.server_port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> "StudyServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="study-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "StudyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
