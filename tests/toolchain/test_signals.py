"""SIGTERM and SIGHUP handled like Ctrl-C: the tool's whole process group is ended (TERM, then KILL
after the grace period), nothing half-written stays, one line says what happened, exit 128 + N."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from optimizer.toolchain.signals import Terminated, terminating_signals


def started_child(pidfile: Path, seconds: float = 60.0) -> int:
    """The pid of the `sleep` the hanging fake started, once it has written it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if text:
            return int(text)
        time.sleep(0.05)
    raise AssertionError("the fake tool did not start")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def group_gone(pgid: int, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def signal_when_started(pidfile: Path, signum: int) -> None:
    """From a thread: send ``signum`` to this process once the hanging fake has started its child."""

    def send() -> None:
        started_child(pidfile)
        os.kill(os.getpid(), signum)

    threading.Thread(target=send, daemon=True).start()


@pytest.fixture
def atc(fake_tools, toolkit):
    toolkit("7.0.0")
    return fake_tools("atc") / "atc"


@pytest.mark.parametrize(
    "signum, ignore_term, status",
    [(signal.SIGTERM, "0", 143), (signal.SIGHUP, "1", 129)],  # SIGHUP: a tool that ignores TERM gets KILL
)
def test_a_signal_stops_convert_and_the_whole_atc_group(atc, onnx_model, tmp_path, gone, signum, ignore_term, status):
    model = onnx_model()
    env = {**os.environ, "FAKE_HANG": "atc", "FAKE_PARTIAL_OM": "1", "FAKE_IGNORE_TERM": ignore_term}
    proc = subprocess.Popen([sys.executable, "-m", "optimizer", "convert", str(model), "--soc", "Ascend310"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = started_child(tmp_path / "child.pid")
    pgid = os.getpgid(child)  # the fake atc's own group (it runs in its own session)
    try:
        assert (tmp_path / "net.om").is_file()  # the fake has begun writing its model
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        line = f"onnx-opt: terminated by {signal.Signals(signum).name}; stopped atc (process group {pgid})\n"
        assert (proc.returncode, err) == (status, line)
        assert out == ""
        assert group_gone(pgid) and gone(child)
    finally:  # whatever happened, leave no process behind
        proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert not (tmp_path / "net.om").exists()  # half-written: removed
    assert sorted(p.name for p in tmp_path.glob("net*")) == ["net.atc.log", "net.onnx"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sighup_stops_tune_and_aoe_in_process(fake_tools, toolkit, onnx_model, cli, tmp_path, monkeypatch, gone):
    toolkit("7.0.0")
    fake_tools("aoe")
    monkeypatch.setenv("FAKE_HANG", "aoe")
    received = []

    def handler(signum, frame):  # in place of the default, which would end pytest on the old code
        received.append(signum)

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        signal_when_started(tmp_path / "child.pid", signal.SIGHUP)
        status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2", "--timeout", "30")
        assert signal.getsignal(signal.SIGHUP) is handler  # put back when run returns
    finally:
        signal.signal(signal.SIGHUP, previous)
    child = int((tmp_path / "child.pid").read_text())
    assert status == 129
    assert err.startswith("onnx-opt: terminated by SIGHUP; stopped aoe (process group ") and err.count("\n") == 1
    assert received == []  # the signal was onnx-opt's, not the handler's it had replaced
    assert gone(child)
    assert not list(tmp_path.glob("net_aoe.om"))


def test_ctrl_c_says_which_group_it_stopped(atc, onnx_model, cli, tmp_path, monkeypatch, gone):
    monkeypatch.setenv("FAKE_HANG", "atc")
    signal_when_started(tmp_path / "child.pid", signal.SIGINT)
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310", "--timeout", "30")
    child = int((tmp_path / "child.pid").read_text())
    assert status == 130
    assert err.splitlines()[-1].startswith("onnx-opt: interrupted; stopped atc (process group ")
    assert gone(child)


def test_a_signal_between_tools_is_one_line_too(cli, monkeypatch):
    from optimizer.toolchain import jobs

    def slow_convert(job, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the signal interrupts this

    def unhandled(signum, frame):  # in place of the default, which would end pytest on the old code
        raise RuntimeError("onnx-opt installed no handler")

    monkeypatch.setattr(jobs, "convert", slow_convert)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        status, _, err = cli("convert", "model.onnx", "--soc", "Ascend310")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (status, err) == (143, "onnx-opt: terminated by SIGTERM\n")


def test_only_the_first_signal_raises_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, terminating_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:  # the cleanup on the way out is not cut short by a second signal
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.1)
    assert (caught.value.signum, caught.value.name, caught.value.exit_status) == (signal.SIGTERM, "SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) == before
