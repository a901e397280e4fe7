"""The runner: argument lists, output to a log, timeouts and Ctrl-C ending the whole process group."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import pytest

from optimizer.errors import UserError
from optimizer.toolchain.process import ToolTimeoutError, command_line, run_tool

FAKES = Path(__file__).parent.parent / "fakes"


def test_output_streams_to_the_log_and_progress(tmp_path):
    seen = []
    script = "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"
    done = run_tool([sys.executable, "-c", script], env=dict(os.environ), timeout=30, log=tmp_path / "x.log",
                    progress=seen.append)
    assert done.returncode == 3
    assert done.output.splitlines() == ["one", "two"]
    assert (tmp_path / "x.log").read_text().splitlines() == ["one", "two"]
    assert [line.split(": ", 1)[1] for line in seen] == ["one", "two"]


def test_arguments_are_never_shell_words(tmp_path):
    tricky = "a b; echo $HOME 'q'"
    done = run_tool([sys.executable, "-c", "import sys; print(sys.argv[1])", tricky], env=dict(os.environ), timeout=30)
    assert done.output == tricky


def test_extra_env_reaches_the_child_only():
    script = "import os; print(os.environ['TUNE_BANK_PATH'])"
    done = run_tool([sys.executable, "-c", script], env=dict(os.environ), timeout=30,
                    extra_env={"TUNE_BANK_PATH": "/bank"})
    assert done.output == "/bank"
    assert "TUNE_BANK_PATH" not in os.environ


def test_verbose_prints_the_command_to_rerun(capsys, tmp_path):
    argv = [sys.executable, "-c", "pass", "two words"]
    run_tool(argv, env=dict(os.environ), timeout=30, verbose=True, cwd=tmp_path, extra_env={"A": "b c"})
    err = capsys.readouterr().err
    assert err == f"$ cd {shlex.quote(str(tmp_path))} && A='b c' {shlex.join(argv)}\n"
    assert command_line(["x", "y z"]) == "x 'y z'"


@pytest.mark.parametrize("ignore_term", ["0", "1"])
def test_timeout_ends_the_group_and_leaves_no_orphan(tmp_path, monkeypatch, gone, ignore_term):
    monkeypatch.setenv("FAKE_HANG", "atc")
    monkeypatch.setenv("FAKE_IGNORE_TERM", ignore_term)
    with pytest.raises(ToolTimeoutError) as caught:
        run_tool([str(FAKES / "atc")], env=dict(os.environ), timeout=1.5, log=tmp_path / "atc.log", grace=0.5)
    assert str(caught.value) == (
        f"atc did not finish within 1.5 s and was stopped; output in {tmp_path / 'atc.log'} "
        "(raise --timeout if it needs longer)"
    )
    child = int((tmp_path / "child.pid").read_text())
    assert gone(child)
    assert "atc: working..." in (tmp_path / "atc.log").read_text()


def test_ctrl_c_ends_the_group_and_leaves_no_orphan(tmp_path, monkeypatch, gone):
    monkeypatch.setenv("FAKE_HANG", "atc")
    pidfile = tmp_path / "child.pid"

    def interrupt_when_started():
        while not pidfile.exists():
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_tool([str(FAKES / "atc")], env=dict(os.environ), timeout=30, grace=0.5)
    assert gone(int(pidfile.read_text()))


def test_a_tool_that_cannot_start_is_a_user_error(tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(UserError, match=f"cannot run {script}: Permission denied"):
        run_tool([str(script)], env=dict(os.environ), timeout=5)
