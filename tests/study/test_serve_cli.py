"""`pcdrl study serve` and `pcdrl study report` on bad input, as a user runs them (subprocesses): each refusal exits
with status 2 and one message that names what is wrong and how to fix it, and writes nothing."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

from pcdrl.study.config import StudyConfig
from pcdrl.study.serve import open_study
from pcdrl.study.store import StudyStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PCDRL_NO_PROGRESS": "1"}
ENV.pop("PCDRL_DEBUG", None)  # the test reads the one-line error, not a traceback


def pcdrl_study(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcdrl", "study", *args], capture_output=True, text=True,
                          env=ENV, timeout=120)


def refused(result: subprocess.CompletedProcess, verb: str = "study") -> str:
    """The error line of a refused command; it must not have started serving or printed a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "serving on" not in result.stdout and "Traceback" not in result.stderr
    assert f"pcdrl {verb}: error:" in result.stderr
    return result.stderr


def test_a_host_other_machines_reach_needs_allow_remote(eval_dir, tmp_path):
    message = refused(pcdrl_study("serve", str(eval_dir), "--study", str(tmp_path / "s"), "--host", "0.0.0.0",
                                  "--port", "0"))
    assert "--allow-remote" in message and "every network interface" in message and "127.0.0.1" in message
    # The refusal must come before the study is frozen: otherwise the refused command has already fixed the
    # study's config, and a rerun with --allow-remote and other overrides meets a study it did not start.
    assert not (tmp_path / "s").exists(), "a refused --host froze a study (check the host before open_study)"


def test_allow_remote_warns_then_serves(eval_dir, tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "pcdrl", "study", "serve", str(eval_dir), "--study",
                                    str(tmp_path / "s"), "--host", "0.0.0.0", "--port", "0", "--allow-remote"],
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV)
    try:
        line, deadline = "", time.monotonic() + 60
        while "serving on" not in line and time.monotonic() < deadline and process.poll() is None:
            if select.select([process.stdout], [], [], 0.5)[0]:
                line = process.stdout.readline()
        port = re.search(r"serving on http://0\.0\.0\.0:(\d+)", line)
        assert port, (line, log.read_text())
        warning = log.read_text()
        assert warning.startswith("warning: --host '0.0.0.0' listens on every network interface")
        assert "no TLS" in warning and "--allow-remote was given" in warning
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/", timeout=30) as response:
            assert response.status == 200 and b"/start" in response.read()  # the start page, served
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()


def test_an_eval_folder_without_items_json_says_to_rerun_eval(tmp_path):
    folder = tmp_path / "old-eval"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"n_items": 3}))  # an eval from before items.json
    message = refused(pcdrl_study("serve", str(folder), "--port", "0"))
    assert f"{folder / 'items.json'}: missing" in message and f"rerun `pcdrl eval RUN --out {folder}`" in message
    assert "summary.json is there" in message
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json"]  # no study/ folder left behind


def test_a_missing_eval_folder_is_named(tmp_path):
    message = refused(pcdrl_study("serve", str(tmp_path / "nowhere"), "--port", "0"))
    assert f"{tmp_path / 'nowhere'}: no such eval folder" in message and "pcdrl eval" in message
    assert not (tmp_path / "nowhere").exists()


def test_too_few_items_per_participant_names_the_field(eval_dir, tmp_path):
    message = refused(pcdrl_study("serve", str(eval_dir), "--study", str(tmp_path / "s"), "--port", "0",
                                  "items_per_participant=3"))
    assert "items_per_participant: 3 is fewer than the 5 conditions" in message
    assert not (tmp_path / "s").exists()


def test_a_started_study_refuses_another_config(eval_dir, tmp_path):
    study = tmp_path / "s"
    store, created = open_study(eval_dir, study, StudyConfig(items_per_participant=6))
    store.close()
    assert created
    message = refused(pcdrl_study("serve", str(eval_dir), "--study", str(study), "--port", "0",
                                  "items_per_participant=5"))
    assert "items_per_participant differ" in message and "config is frozen when it starts" in message
    assert "--study NEW_FOLDER" in message
    reopened = StudyStore(study)
    try:
        assert reopened.config.items_per_participant == 6  # the frozen config is untouched
    finally:
        reopened.close()


def test_report_on_a_folder_without_a_study(tmp_path):
    folder = tmp_path / "not-a-study"
    folder.mkdir()
    message = refused(pcdrl_study("report", str(folder)))
    assert "no study.sqlite" in message and f"pcdrl study serve EVAL_DIR --study {folder}" in message
    assert list(folder.iterdir()) == []  # no report/ folder for a study that is not there


def test_a_port_in_use_is_refused_before_the_study_starts(eval_dir, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = refused(pcdrl_study("serve", str(eval_dir), "--study", str(tmp_path / "s"), "--port", str(port)))
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in message and "--port 0" in message
    assert not (tmp_path / "s").exists()
