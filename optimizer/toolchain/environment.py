"""Find the CANN toolkit: its home, its version, the variables of its set_env.sh (for child
processes only) and each tool, on PATH first, then inside the toolkit."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from optimizer.errors import UserError
from optimizer.toolchain.versions import at_least, is_version

DEFAULT_HOME = Path("/usr/local/Ascend/ascend-toolkit/latest")
HOME_VARIABLES = ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")
SET_ENV_SCRIPTS = ("../set_env.sh", "set_env.sh", "bin/setenv.bash")  # relative to the toolkit home
VERSION_FILES = ("version.cfg", "*-linux/ascend_toolkit_install.info", "compiler/version.info", "toolkit/version.info")

_MSPROF_PY = "tools/profiler/profiler_tool/analysis/msprof/msprof.py"
TOOLKIT_PATHS = {  # where each tool lives inside a toolkit home (or its <arch>-linux folder), by era
    "atc": ("bin/atc", "compiler/bin/atc", "atc/bin/atc"),
    "aoe": ("bin/aoe", "tools/aoe/bin/aoe"),
    "msprof": ("bin/msprof", "tools/profiler/bin/msprof", "toolkit/tools/profiler/bin/msprof"),
    "msprof.py": (_MSPROF_PY, f"toolkit/{_MSPROF_PY}"),
}
_TOOLKIT = "install the CANN toolkit (Ascend-cann-toolkit) and set ASCEND_TOOLKIT_HOME, or put {name} on PATH"
HINTS = {
    "atc": _TOOLKIT.format(name="atc"),
    "aoe": _TOOLKIT.format(name="aoe"),
    "msprof": _TOOLKIT.format(name="msprof"),
    "msprof.py": "the CANN toolkit before 6.0 ships it under tools/profiler; set ASCEND_TOOLKIT_HOME or --cann-version",
    "python3": "install Python 3 and put python3 on PATH",
}

SET_ENV_TIMEOUT = 30.0  # seconds bash may take to source set_env.sh
# bash prints its environment, sources the script (no arguments; its output dropped), prints the
# mark and the environment again, and exits with the script's status.
_SOURCE = (
    '__oo_script=$1 __oo_mark=$2; set --; env -0; source "$__oo_script" >/dev/null; __oo_status=$?; '
    'printf "%s\\0" "$__oo_mark"; env -0; exit $__oo_status'
)
_MARK = "--onnx-opt: set_env.sh sourced--"
_SHELL_OWN = frozenset({"_", "PWD", "OLDPWD", "SHLVL"})  # bash's own bookkeeping, not the script's


@dataclass
class Toolchain:
    """What was found: toolkit home, CANN version, the child environment, and the tools."""

    home: Path | None
    home_source: str | None
    tried: list[str]
    version: str | None
    version_source: str | None
    set_env: Path | None
    env: dict[str, str]
    user_path: str
    set_env_error: str | None = None  # why set_env.sh could not be sourced (discover(strict=False) only)

    def find(self, name: str) -> Path | None:
        """The tool ``name``: on the user's PATH first, then in the toolkit; None when absent."""
        if not name.endswith(".py") and (found := shutil.which(name, path=self.user_path)):
            return Path(found)
        for root in self._roots():
            for relative in TOOLKIT_PATHS.get(name, ()):
                path = root / relative
                if path.is_file() and (name.endswith(".py") or os.access(path, os.X_OK)):
                    return path
        return None

    def tool(self, name: str) -> Path:
        """Like :meth:`find`, but a missing tool is a :class:`UserError` saying what to install or set."""
        found = self.find(name)
        if found is None:
            where = f"the toolkit at {self.home}" if self.home else f"a CANN toolkit ({self.describe_tried()})"
            raise UserError(f"{name} not found on PATH or in {where}: {HINTS.get(name, _TOOLKIT.format(name=name))}")
        return found

    def python(self) -> str:
        """The Python that runs Python tools (ais_bench, msprof.py): python3 on the child's PATH."""
        return shutil.which("python3", path=self.env.get("PATH", "")) or sys.executable

    def version_at_least(self, other: str) -> bool | None:
        """Whether the CANN version is ``other`` or later; None when the version is unknown."""
        return None if self.version is None else at_least(self.version, other)

    def describe_tried(self) -> str:
        """Where the toolkit was looked for, for messages."""
        return "tried " + ", ".join(self.tried)

    def _roots(self) -> list[Path]:
        if self.home is None:
            return []
        return [self.home, self.home / f"{platform.machine()}-linux"]


def discover(cann_version: str | None = None, environ: dict[str, str] | None = None, *,
             strict: bool = True) -> Toolchain:
    """Find the toolkit from ``environ`` (default: this process's environment); never raises for absence.

    ``cann_version`` (``--cann-version``) overrides the version read from the toolkit. A set_env.sh
    that fails or hangs is a :class:`UserError`; with ``strict=False`` it is recorded in
    ``set_env_error`` instead and the tools get ``environ`` as it is.
    """
    environ = dict(os.environ if environ is None else environ)
    if cann_version is not None and not is_version(cann_version):
        raise UserError(f"--cann-version {cann_version}: not a CANN version (e.g. 5.0.2, 6.3.RC1, 8.0.0)")
    home, source, tried = _toolkit_home(environ)
    version, version_source = (cann_version, "--cann-version") if cann_version else (None, None)
    if version is None and home is not None and (found := read_cann_version(home)):
        version, version_source = found[0], str(found[1])
    set_env = _set_env_script(home)
    env, problem = environ, None
    if set_env is not None:
        try:
            env = source_set_env(set_env, environ)
        except UserError as exc:
            if strict:
                raise
            problem = str(exc)
    return Toolchain(home, source, tried, version, version_source, set_env, env, environ.get("PATH", ""), problem)


def read_cann_version(home: Path) -> tuple[str, Path] | None:
    """The CANN version and the file it came from, or None when no file holds one.

    Reads ``version.cfg`` (``runtime_running_version=[5.0.2.alpha003:...]``), the install info
    (``version=6.0.1``) and ``version.info`` files (``Version=7.0.0``).
    """
    for pattern in VERSION_FILES:
        for path in sorted(home.glob(pattern)):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                key = key.strip().lower()
                if not sep or not (key == "version" or key.endswith("_running_version")):
                    continue
                value = value.strip().strip("[]\"'").split(":")[0].strip()
                if is_version(value):
                    return value, path
    return None


def source_set_env(path: Path, environ: dict[str, str], *, timeout: float | None = None) -> dict[str, str]:
    """``environ`` as ``source path`` in bash leaves it: the variables the script set, changed or unset.

    bash itself sources the script (so ``$(...)``, conditionals and functions take effect as on a real
    CANN install) and prints its environment before and after; bash's own variables (``PWD``,
    ``SHLVL``, ...) are left out. A script that fails (non-zero status, ``exit``) or runs longer than
    ``timeout`` seconds (default :data:`SET_ENV_TIMEOUT`; its whole process group is ended) is a
    :class:`UserError` of one line.
    """
    from optimizer.toolchain.process import stop_group

    timeout = SET_ENV_TIMEOUT if timeout is None else timeout
    bash = shutil.which("bash", path=environ.get("PATH")) or shutil.which("bash")
    if bash is None:
        raise UserError(f"{path}: bash is needed to source it, and there is no bash on PATH")
    argv = [bash, "-c", _SOURCE, "set_env", str(path), _MARK]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:  # the timeout, Ctrl-C, SIGTERM: no sourcing left running
        stop_group(proc, grace=1.0)
        proc.stdout.close()
        proc.stderr.close()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise UserError(f"{path}: sourcing it with bash did not finish within {timeout:g} s") from None
        raise
    parts = out.split(b"\0")
    mark = os.fsencode(_MARK)
    if proc.returncode != 0 or parts.count(mark) != 1:
        said = err.decode(errors="replace").strip().splitlines()
        why = f": {said[-1].strip()}" if said else ""
        raise UserError(f"{path}: sourcing it with bash failed (exit status {proc.returncode}){why}")
    before, after = _environment(parts[: parts.index(mark)]), _environment(parts[parts.index(mark) + 1 :])
    env = dict(environ)
    for name, value in after.items():
        if name not in _SHELL_OWN and before.get(name) != value:
            env[name] = value
    for name in before.keys() - after.keys() - _SHELL_OWN:
        env.pop(name, None)
    return env


def _environment(entries: list[bytes]) -> dict[str, str]:
    """``NAME=value`` entries of ``env -0`` as a dict (bytes that are not UTF-8 kept, as os.environ keeps them)."""
    pairs = (os.fsdecode(entry).partition("=") for entry in entries if b"=" in entry)
    return {name: value for name, _, value in pairs}


def _toolkit_home(environ: dict[str, str]) -> tuple[Path | None, str | None, list[str]]:
    candidates = [(f"${name}", environ[name]) for name in HOME_VARIABLES if environ.get(name)]
    candidates.append(("the default path", str(DEFAULT_HOME)))
    tried = []
    for source, value in candidates:
        if Path(value).is_dir():
            return Path(value), source, tried
        tried.append(f"{source} {value}")
    return None, None, tried


def _set_env_script(home: Path | None) -> Path | None:
    if home is None:
        return None
    found = next((home / name for name in SET_ENV_SCRIPTS if (home / name).is_file()), None)
    return Path(os.path.normpath(found)) if found else None
