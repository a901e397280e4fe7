"""``onnx-opt doctor``: what is found, what is missing, what to do; always exit status 0."""

from __future__ import annotations

import platform


def table(out: str) -> dict[str, str]:
    rows = {}
    for line in out.split("\n\n")[0].splitlines():
        name, value = line.split("  ", 1)
        rows[name.strip()] = value.strip()
    return rows


def test_nothing_installed(cli, tmp_path):
    status, out, err = cli("doctor")
    assert (status, err) == (0, "")
    rows = table(out)
    assert rows["toolkit"] == f"not found (tried the default path {tmp_path / 'no-default-toolkit'})"
    assert [rows[name] for name in ("CANN version", "set_env.sh", "atc", "aoe", "msprof", "ais_bench")] == [
        "unknown", "not found", "missing", "missing", "missing", "missing",
    ]
    todo = out.split("to do:\n", 1)[1].splitlines()
    assert todo[0] == "  - install the CANN toolkit and set ASCEND_TOOLKIT_HOME to it (or put its tools on PATH)"
    hint = "install the CANN toolkit (Ascend-cann-toolkit) and set ASCEND_TOOLKIT_HOME, or put atc on PATH"
    assert f"  - atc: {hint}" in todo
    assert todo[-1].startswith("  - no inference tool: install ais_bench (the aclruntime and ais_bench wheels")
    assert todo[-1].endswith(f"or put the old benchmark.{platform.machine()} tool on PATH")


def test_old_toolkit(cli, toolkit, fake_tools, ais_bench):
    home = toolkit("5.0.2", legacy_msprof=True)
    folder = fake_tools("atc", "msprof")
    status, out, _ = cli("doctor")
    assert status == 0
    rows = table(out)
    assert rows["toolkit"] == f"{home} (from $ASCEND_TOOLKIT_HOME)"
    info = home / f"{platform.machine()}-linux" / "ascend_toolkit_install.info"
    assert rows["CANN version"] == f"5.0.2 (from {info})"
    assert rows["set_env.sh"] == f"{home.parent / 'set_env.sh'} (its variables are given to the tools)"
    assert (rows["atc"], rows["aoe"], rows["msprof"]) == (str(folder / "atc"), "missing", str(folder / "msprof"))
    assert rows["msprof.py"] == str(home / "tools/profiler/profiler_tool/analysis/msprof/msprof.py")
    assert rows["ais_bench"].endswith(" -m ais_bench")
    assert rows["msprof export"] == "msprof.py import / export summary"
    assert rows["auto_tune"] == "ATC --auto_tune_mode"
    assert out.endswith("to do:\n  - aoe: install the CANN toolkit (Ascend-cann-toolkit) and set ASCEND_TOOLKIT_HOME, "
                        "or put aoe on PATH\n")


def test_new_toolkit_everything_found(cli, toolkit, fake_tools, ais_bench):
    toolkit("8.0.RC1")
    fake_tools("atc", "aoe", "msprof")
    status, out, _ = cli("doctor")
    rows = table(out)
    assert "msprof.py" not in rows
    assert rows["msprof export"] == "msprof --export=on"
    assert rows["auto_tune"] == "removed in CANN 6.0.1: use 'onnx-opt tune --tool aoe'"
    assert out.endswith("everything onnx-opt drives is here\n")


def test_cann_version_option(cli):
    status, out, _ = cli("doctor", "--cann-version", "6.0.1")
    assert status == 0
    assert table(out)["CANN version"] == "6.0.1 (from --cann-version)"
