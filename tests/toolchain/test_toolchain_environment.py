"""Toolkit discovery: home, CANN version files, set_env.sh sourced by bash, tool lookup, missing tools."""

from __future__ import annotations

import os
import platform

import pytest

from optimizer.errors import UserError
from optimizer.toolchain.environment import discover, read_cann_version, source_set_env


def test_toolkit_home_prefers_ascend_toolkit_home(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("ASCEND_HOME_PATH", str(second))
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(first))
    found = discover()
    assert (found.home, found.home_source) == (first, "$ASCEND_TOOLKIT_HOME")


def test_toolkit_home_falls_back_to_ascend_home_path_then_default(tmp_path, monkeypatch):
    from optimizer.toolchain import environment

    second, default = tmp_path / "second", tmp_path / "default"
    second.mkdir()
    default.mkdir()
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "missing"))
    monkeypatch.setenv("ASCEND_HOME_PATH", str(second))
    found = discover()
    assert (found.home, found.home_source) == (second, "$ASCEND_HOME_PATH")
    assert found.tried == [f"$ASCEND_TOOLKIT_HOME {tmp_path / 'missing'}"]
    monkeypatch.delenv("ASCEND_HOME_PATH")
    monkeypatch.setattr(environment, "DEFAULT_HOME", default)
    assert discover().home == default


def test_nothing_installed_is_not_an_error():
    found = discover()
    assert (found.home, found.version, found.set_env) == (None, None, None)
    assert found.find("atc") is None


@pytest.mark.parametrize(
    "relative, text, version",
    [
        ("version.cfg", "# version: 1.0\nruntime_running_version=[5.0.2.alpha003:5.0.2.alpha003]\n", "5.0.2.alpha003"),
        (f"{platform.machine()}-linux/ascend_toolkit_install.info", "package_name=Ascend-cann-toolkit\nversion=6.0.1\n",
         "6.0.1"),
        ("compiler/version.info", "Version=7.0.0\nversion_dir=7.0.0\n", "7.0.0"),
        ("toolkit/version.info", "Version = 6.3.RC1\n", "6.3.RC1"),
    ],
)
def test_cann_version_files(tmp_path, relative, text, version):
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert read_cann_version(tmp_path) == (version, path)


def test_unreadable_version_is_none_and_cann_version_overrides(tmp_path, monkeypatch):
    (tmp_path / "version.cfg").write_text("runtime_running_version=[]\ngarbage\n")
    assert read_cann_version(tmp_path) is None
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path))
    assert discover().version is None
    found = discover("5.1.RC1")
    assert (found.version, found.version_source) == ("5.1.RC1", "--cann-version")


def test_cann_version_option_overrides_the_file(toolkit):
    toolkit("7.0.0")
    assert discover().version == "7.0.0"
    assert discover("5.0.2").version == "5.0.2"


def test_bad_cann_version_is_a_user_error():
    with pytest.raises(UserError, match="--cann-version latest: not a CANN version"):
        discover("latest")


# The lines a real CANN set_env.sh has beyond plain exports: its own folder from $(dirname ...),
# a library folder named by $(uname -m), a function, conditionals; an echo for the user.
REAL_STYLE_SET_ENV = """#!/bin/bash
_toolkit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/latest
export ASCEND_TOOLKIT_HOME="${_toolkit}"
prepend() { export "$1"="$2${!1:+:${!1}}"; }
prepend LD_LIBRARY_PATH "${ASCEND_TOOLKIT_HOME}/lib64:${ASCEND_TOOLKIT_HOME}/lib64/plugin/$(uname -m)"
prepend PYTHONPATH "${ASCEND_TOOLKIT_HOME}/python/site-packages"
if [ -d "${ASCEND_TOOLKIT_HOME}/opp" ]; then
    export ASCEND_OPP_PATH="${ASCEND_TOOLKIT_HOME}/opp"
else
    export ASCEND_OPP_PATH=/nowhere
fi
[ -n "$SKIPPED_UNLESS_SET" ] && export SHOULD_NOT_EXIST=1
export LITERAL='$NOT_EXPANDED'
unset OLD_ASCEND_SETTING
cd /
echo "Finished setting the Ascend environment"
true
"""


@pytest.fixture
def real_style_toolkit(tmp_path, monkeypatch):
    """A toolkit whose ../set_env.sh is REAL_STYLE_SET_ENV."""
    home = tmp_path / "ascend-toolkit" / "latest"
    (home / "opp").mkdir(parents=True)
    (home.parent / "set_env.sh").write_text(REAL_STYLE_SET_ENV)
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(home))
    return home


def test_set_env_is_sourced_by_bash(real_style_toolkit, monkeypatch):
    home = real_style_toolkit
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/lib")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("OLD_ASCEND_SETTING", "1")
    env = discover().env
    changed = {name: value for name, value in env.items() if os.environ.get(name) != value}
    assert changed == {  # ASCEND_TOOLKIT_HOME, already right, stays as it was
        "LD_LIBRARY_PATH": f"{home}/lib64:{home}/lib64/plugin/{platform.machine()}:/usr/lib",
        "PYTHONPATH": f"{home}/python/site-packages",
        "ASCEND_OPP_PATH": f"{home}/opp",
        "LITERAL": "$NOT_EXPANDED",
    }
    assert "OLD_ASCEND_SETTING" not in env  # unset by the script
    assert "ASCEND_OPP_PATH" not in os.environ  # for the tools only


def test_the_shell_own_variables_stay_as_they_were(real_style_toolkit, tmp_path):
    environ = {"PATH": os.environ["PATH"], "PWD": str(tmp_path), "KEPT": "a b\nc"}
    env = source_set_env(real_style_toolkit.parent / "set_env.sh", environ)
    assert {name: env[name] for name in environ} == environ  # the script's `cd /` does not leak as PWD
    assert not {"SHLVL", "OLDPWD", "_", "_toolkit"} & set(env)


@pytest.mark.parametrize(
    "text, why",
    [
        ("export A=1\nexit 3\n", "(exit status 3)"),
        ("export A=1\necho 'set_env.sh: line 2: arch: command not found' >&2\nfalse\n",
         "(exit status 1): set_env.sh: line 2: arch: command not found"),
    ],
)
def test_a_failing_set_env_is_one_clear_line(tmp_path, text, why):
    script = tmp_path / "set_env.sh"
    script.write_text(text)
    with pytest.raises(UserError) as caught:
        source_set_env(script, dict(os.environ))
    assert str(caught.value) == f"{script}: sourcing it with bash failed {why}"


def test_a_hanging_set_env_is_stopped_with_its_children(tmp_path, gone):
    script = tmp_path / "set_env.sh"
    script.write_text(f"sleep 300 &\necho $! > {tmp_path / 'sleep.pid'}\nwait\n")
    with pytest.raises(UserError) as caught:
        source_set_env(script, dict(os.environ), timeout=1)
    assert str(caught.value) == f"{script}: sourcing it with bash did not finish within 1 s"
    assert gone(int((tmp_path / "sleep.pid").read_text()))


def test_a_failing_set_env_stops_convert_before_atc(toolkit, fake_tools, onnx_model, cli, calls):
    home = toolkit("7.0.0")
    fake_tools("atc")
    (home.parent / "set_env.sh").write_text("exit 1\n")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    assert (status, err) == (2, f"onnx-opt: error: {home.parent / 'set_env.sh'}: sourcing it with bash failed "
                                "(exit status 1)\n")
    assert calls() == []
    status, out, _ = cli("doctor")  # doctor says so and still exits 0
    assert status == 0
    [row] = [line for line in out.splitlines() if line.startswith("set_env.sh ")]
    assert row.split(None, 1)[1] == f"{home.parent / 'set_env.sh'} (cannot be sourced: the tools would not run)"
    assert f"  - {home.parent / 'set_env.sh'}: sourcing it with bash failed (exit status 1)" in out


def test_set_env_is_for_children_only(toolkit):
    home = toolkit("7.0.0")
    found = discover()
    assert found.set_env == home.parent / "set_env.sh"
    assert found.env["ASCEND_OPP_PATH"] == f"{home}/opp"
    assert found.env["TOOLCHAIN_HOME"] == f"{home}/toolkit"
    assert found.env["LD_LIBRARY_PATH"].startswith(f"{home}/lib64:")
    assert "ASCEND_OPP_PATH" not in os.environ


def test_tools_on_path_come_before_the_toolkit(toolkit, fake_tools):
    home = toolkit("7.0.0")
    inside = home / "bin" / "atc"
    inside.parent.mkdir()
    inside.write_text("#!/bin/sh\n")
    inside.chmod(0o755)
    assert discover().find("atc") == inside
    folder = fake_tools("atc")
    assert discover().find("atc") == folder / "atc"


def test_tools_in_the_arch_folder_of_old_toolkits(toolkit):
    home = toolkit("5.0.2")
    msprof = home / f"{platform.machine()}-linux" / "toolkit" / "tools" / "profiler" / "bin" / "msprof"
    msprof.parent.mkdir(parents=True)
    msprof.write_text("#!/bin/sh\n")
    msprof.chmod(0o755)
    assert discover().find("msprof") == msprof


def test_missing_tool_names_what_to_install(toolkit):
    home = toolkit("7.0.0")
    with pytest.raises(UserError) as caught:
        discover().tool("aoe")
    assert str(caught.value) == (
        f"aoe not found on PATH or in the toolkit at {home}: install the CANN toolkit (Ascend-cann-toolkit) "
        "and set ASCEND_TOOLKIT_HOME, or put aoe on PATH"
    )


def test_missing_toolkit_says_where_it_looked(tmp_path):
    with pytest.raises(UserError, match=r"atc not found on PATH or in a CANN toolkit \(tried the default path "):
        discover().tool("atc")
