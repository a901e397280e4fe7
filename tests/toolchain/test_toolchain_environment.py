"""Toolkit discovery: home, CANN version files, set_env.sh variables, tool lookup, missing tools."""

from __future__ import annotations

import os
import platform

import pytest

from optimizer.errors import UserError
from optimizer.toolchain.environment import apply_set_env, discover, read_cann_version


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


def test_set_env_lines_expand_like_a_shell():
    text = (
        "#!/bin/bash\n"
        "export ASCEND_TOOLKIT_HOME=/opt/ascend/latest\n"
        "export LD_LIBRARY_PATH=${ASCEND_TOOLKIT_HOME}/lib64:$LD_LIBRARY_PATH\n"
        'export PYTHONPATH="$ASCEND_TOOLKIT_HOME/python/site-packages:${PYTHONPATH}"\n'
        "export LITERAL='$NOT_EXPANDED'\n"
        "export SCRIPT_DIR=$(cd $(dirname ${BASH_SOURCE[0]}); pwd)\n"
        "if [ -d x ]; then\n"
        "    export INDENTED=${UNSET_VARIABLE}/bin\n"
        "fi\n"
    )
    env = apply_set_env(text, {"LD_LIBRARY_PATH": "/usr/lib", "KEPT": "1"})
    assert env == {
        "KEPT": "1",
        "ASCEND_TOOLKIT_HOME": "/opt/ascend/latest",
        "LD_LIBRARY_PATH": "/opt/ascend/latest/lib64:/usr/lib",
        "PYTHONPATH": "/opt/ascend/latest/python/site-packages:",
        "LITERAL": "$NOT_EXPANDED",
        "INDENTED": "/bin",
    }


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
