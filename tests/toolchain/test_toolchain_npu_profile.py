"""``profile_om``: ais_bench or benchmark under msprof, exported the way each CANN wants, read back."""

from __future__ import annotations

import shlex
import statistics

import pytest

from optimizer.errors import UserError
from optimizer.toolchain.environment import discover
from optimizer.toolchain.msprof import export_commands
from optimizer.toolchain.npu_profile import profile_om
from optimizer.toolchain.process import ToolError, ToolTimeoutError
from profiles.read import read_profile

AIS_TIMES = [0.9319999814033508, 0.9710000157356262, 1.0433000326156616, 0.9820722253774902]


@pytest.fixture
def om(tmp_path):
    path = tmp_path / "net.om"
    path.write_bytes(b"fake om\n")
    return path


def python3() -> str:
    return discover().python()


def test_new_cann_exports_with_msprof(toolkit, fake_tools, ais_bench, om, tmp_path, calls):
    toolkit("7.0.0")
    fake_tools("msprof")
    out = tmp_path / "prof"
    result = profile_om(om, out, runs=8, timeout=60, toolchain=discover())
    collect, infer, export = calls()
    app = [python3(), "-m", "ais_bench", "--model", str(om), "--device", "0", "--loop", "8",
           "--output", str(out / "inference")]
    assert (collect["tool"], collect["argv"]) == ("msprof", [
        f"--output={out / 'msprof'}", f"--application={shlex.join(app)}", "--task-time=on", "--aicpu=on",
        "--runtime-api=on",
    ])
    assert (infer["tool"], infer["argv"]) == ("ais_bench", app[3:])
    [job] = (out / "msprof").glob("PROF_*")
    assert (export["tool"], export["argv"]) == ("msprof", ["--export=on", f"--output={job}"])
    assert result.raw == job
    assert sorted(f.name.split("_2")[0] for f in result.files) == ["op_statistic", "op_summary"]
    assert all(f.parent == out and f.name.startswith(("op_summary_", "op_statistic_")) for f in result.files)
    mean = statistics.fmean(AIS_TIMES * 2)
    assert result.latency_ms == pytest.approx(mean)
    assert result.throughput == pytest.approx(1000 / mean)
    assert result.tool == "ais_bench"
    assert result.summary.parent == out / "inference" and result.summary.name.endswith("_summary.json")
    profile = read_profile(out)
    assert [op.op_type for op in profile.ops] == ["TransposeD", "Conv2D", "Conv2D", "TransData"]
    assert profile.stats[0].op_type == "TransposeD"


def test_old_cann_exports_with_msprof_py(toolkit, fake_tools, ais_bench, om, tmp_path, calls):
    home = toolkit("5.0.2", legacy_msprof=True)
    fake_tools("msprof")
    out = tmp_path / "prof"
    result = profile_om(om, out, runs=4, timeout=60, toolchain=discover())
    collect, _, import_, export = calls()
    assert collect["argv"][2:] == ["--task-time=on", "--aicpu=on", "--runtime-api=on", "--model-execution=on"]
    [job] = (out / "msprof").glob("PROF_*")
    script = home / "tools/profiler/profiler_tool/analysis/msprof/msprof.py"
    assert (import_["tool"], import_["argv"]) == ("msprof.py", ["import", "-dir", str(job)])
    assert (export["tool"], export["argv"]) == ("msprof.py", ["export", "summary", "-dir", str(job)])
    assert sorted(f.name for f in result.files) == ["op_statistic_0_1.csv", "op_summary_0_1.csv"]
    assert [log.name for log in result.logs] == ["msprof_collect.log", "msprof_export_1.log", "msprof_export_2.log"]
    assert (out / "msprof_export_1.log").read_text() == f"[INFO] Import {job} finished.\n"
    profile = read_profile(out)
    assert profile.ops[0].input_shapes == [[1, 64, 2, 2, 114, 114]]
    assert sorted(profile.meta["files"]) == ["op_statistic_0_1.csv", "op_summary_0_1.csv"]
    assert export_commands(discover(), job) == [
        [python3(), str(script), "import", "-dir", str(job)],
        [python3(), str(script), "export", "summary", "-dir", str(job)],
    ]


def test_old_cann_job_layout(toolkit, fake_tools, ais_bench, om, tmp_path, monkeypatch):
    toolkit("5.0.2", legacy_msprof=True)
    fake_tools("msprof")
    monkeypatch.setenv("FAKE_MSPROF_LAYOUT", "job")
    result = profile_om(om, tmp_path / "prof", timeout=60, toolchain=discover())
    assert result.raw.name.startswith("JOB")
    assert sorted(f.name for f in result.files) == ["op_statistic_0_1.csv", "op_summary_0_1.csv"]
    assert (result.raw / "summary" / "op_summary_0_1.csv").is_file()


def test_old_benchmark_tool_when_ais_bench_is_absent(toolkit, fake_tools, om, tmp_path, calls):
    toolkit("6.3.RC1")
    bin_dir = fake_tools("msprof", "benchmark")
    out = tmp_path / "prof"
    result = profile_om(om, out, device=1, runs=5, timeout=60, toolchain=discover(), batch_size=4)
    collect, bench, _ = calls()
    benchmark = next(bin_dir.glob("benchmark.*"))
    assert bench["argv"] == ["-round=5", f"-om_path={om}", "-device_id=1", "-batch_size=4"]
    assert collect["argv"][1] == f"--application={shlex.join([str(benchmark), *bench['argv']])}"
    assert bench["cwd"] == str(out / "inference")
    assert (result.tool, result.throughput, result.latency_ms) == ("benchmark", 38.4344, 26.1589)
    assert result.summary == out / "inference" / "result" / "PureInfer_perf_of_net_in_device_1.txt"
    assert read_profile(out).ops[0].extra.get("Device_id") == "1"


def test_unknown_version_on_an_old_toolkit_asks_for_cann_version(toolkit, fake_tools, ais_bench, om, tmp_path,
                                                                 monkeypatch):
    toolkit(None)
    monkeypatch.setenv("FAKE_CANN_VERSION", "5.0.2")
    fake_tools("msprof")
    with pytest.raises(ToolError) as caught:
        profile_om(om, tmp_path / "prof", timeout=60, toolchain=discover())
    assert str(caught.value) == (
        f"msprof export failed with exit status 1; output in {tmp_path / 'prof' / 'msprof_export_1.log'} "
        "(CANN version unknown: give --cann-version if that is wrong)"
    )


def test_verbose_prints_every_command(toolkit, fake_tools, ais_bench, om, tmp_path, capsys):
    toolkit("8.0.0")
    msprof = fake_tools("msprof") / "msprof"
    out = tmp_path / "prof"
    result = profile_om(om, out, timeout=60, toolchain=discover(), verbose=True)
    commands = [line for line in capsys.readouterr().err.splitlines() if line.startswith("$ ")]
    assert len(commands) == 2  # the collection, the export
    assert commands[0].startswith(f"$ cd {out / 'inference'} && {msprof} --output={out / 'msprof'} '--application=")
    assert commands[1] == f"$ {shlex.join([str(msprof), '--export=on', f'--output={result.raw}'])}"


def test_no_inference_tool(toolkit, fake_tools, om, tmp_path):
    toolkit("7.0.0")
    fake_tools("msprof")
    with pytest.raises(UserError, match=r"^no inference tool: install ais_bench .* or put the old benchmark\."):
        profile_om(om, tmp_path / "prof", timeout=60, toolchain=discover())
    assert not (tmp_path / "prof").exists()


def test_missing_msprof(toolkit, ais_bench, om, tmp_path):
    home = toolkit("7.0.0")
    with pytest.raises(UserError, match=f"^msprof not found on PATH or in the toolkit at {home}: install the CANN"):
        profile_om(om, tmp_path / "prof", timeout=60, toolchain=discover())
    assert not (tmp_path / "prof").exists()


def test_missing_legacy_exporter(toolkit, fake_tools, ais_bench, om, tmp_path, calls):
    toolkit("5.0.2")
    fake_tools("msprof")
    with pytest.raises(UserError, match="^msprof.py not found on PATH or in the toolkit at "):
        profile_om(om, tmp_path / "prof", timeout=60, toolchain=discover())
    assert calls() == []
    assert not (tmp_path / "prof").exists()


def test_an_existing_profile_is_not_mixed_in(toolkit, fake_tools, ais_bench, om, tmp_path):
    toolkit("7.0.0")
    fake_tools("msprof")
    out = tmp_path / "prof"
    out.mkdir()
    (out / "op_summary_0_1.csv").write_text("old")
    with pytest.raises(UserError, match="already holds a profile \\(op_summary_0_1.csv\\): give a new output folder"):
        profile_om(om, out, timeout=60, toolchain=discover())


def test_not_an_om(tmp_path):
    with pytest.raises(UserError, match="no such .om model"):
        profile_om(tmp_path / "net.onnx", tmp_path / "prof", timeout=60, toolchain=discover())


def test_msprof_hang_is_stopped(toolkit, fake_tools, ais_bench, om, tmp_path, monkeypatch, gone):
    toolkit("7.0.0")
    fake_tools("msprof")
    monkeypatch.setenv("FAKE_HANG", "msprof")
    with pytest.raises(ToolTimeoutError, match="^msprof did not finish within 1 s"):
        profile_om(om, tmp_path / "prof", timeout=1, toolchain=discover())
    assert gone(int((tmp_path / "child.pid").read_text()))


def test_profile_verb_dispatches_om_files_to_the_npu(toolkit, fake_tools, ais_bench, om, tmp_path, cli):
    toolkit("7.0.0")
    fake_tools("msprof")
    status, out, err = cli("profile", om, "-o", tmp_path / "prof", "--runs", "4")
    assert status == 0, err
    assert "TransposeD" in out and "wrote " in err
    assert read_profile(tmp_path / "prof").stats[0].op_type == "TransposeD"


def test_profile_verb_reports_a_tool_timeout_with_exit_1(toolkit, fake_tools, ais_bench, om, tmp_path, cli,
                                                         monkeypatch):
    toolkit("7.0.0")
    fake_tools("msprof")
    monkeypatch.setenv("FAKE_HANG", "msprof")
    status, _, err = cli("profile", om, "-o", tmp_path / "prof", "--timeout", "1")
    assert status == 1
    assert err.startswith("onnx-opt: msprof did not finish within 1 s") and "Traceback" not in err
