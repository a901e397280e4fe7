"""The collector's pause: restored after the block, nested pauses leave it to the outer one, and a
whole command's pause stays on only when the process ends with the command."""

import gc

import pytest

from optimizer import gc_pause
from optimizer.gc_pause import paused_gc


@pytest.fixture(autouse=True)
def collector_on_afterwards():
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_as_it_was_after():
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()  # off before, off after


@pytest.mark.parametrize("process_ends", [False, True])
def test_a_commands_pause_outlasts_it_only_when_the_process_ends_with_it(monkeypatch, process_ends):
    monkeypatch.setattr(gc_pause, "_ENDS_WITH_COMMAND", False)
    if process_ends:
        gc_pause.end_with_command()
    with paused_gc(for_the_command=True):
        pass
    assert gc.isenabled() is not process_ends
    gc.enable()
    with paused_gc():  # any other pause ends with its block
        pass
    assert gc.isenabled()


def test_an_in_process_optimize_gives_the_collector_back(cli, examples, tmp_path):
    code, _, err = cli("optimize", examples / "skunit_opset11.onnx", "-o", tmp_path / "o.onnx", "-q")
    assert code == 0, err
    assert gc.isenabled()
