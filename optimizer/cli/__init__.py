"""The ``onnx-opt`` command line: one module per verb; heavy modules load inside the verbs."""

from __future__ import annotations

import sys

import click

from optimizer import __version__
from optimizer.cli.auto_cmd import auto_command
from optimizer.cli.bench_cmd import bench_command
from optimizer.cli.compare_cmd import compare_command
from optimizer.cli.console import verbosity_options
from optimizer.cli.convert_cmd import convert_command
from optimizer.cli.doctor_cmd import doctor_command
from optimizer.cli.hotspots_cmd import hotspots_command
from optimizer.cli.optimize_cmd import optimize_command
from optimizer.cli.passes_cmd import passes_command
from optimizer.cli.plan_cmd import plan_command
from optimizer.cli.profile_cmd import profile_command
from optimizer.cli.tune_cmd import tune_command
from optimizer.cli.whitelist_cmd import whitelist_command
from optimizer.errors import UserError, error_line


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="onnx-opt", message="%(prog)s %(version)s")
@verbosity_options
def cli() -> None:
    """onnx-opt: optimise ONNX graphs for Huawei Ascend conversion, verified with onnxruntime."""


cli.add_command(optimize_command)
cli.add_command(passes_command)
cli.add_command(whitelist_command)
cli.add_command(doctor_command)
cli.add_command(convert_command)
cli.add_command(tune_command)
cli.add_command(profile_command)
cli.add_command(compare_command)
cli.add_command(hotspots_command)
cli.add_command(plan_command)
cli.add_command(bench_command)
cli.add_command(auto_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn every error into an exit status."""
    args = sys.argv[1:] if argv is None else argv
    sys.exit(run(args))


def run(args: list[str]) -> int:
    """Run the CLI on ``args`` and return the exit status (0 ok, 1 internal, 2 bad input)."""
    try:
        result = cli.main(args=args, prog_name="onnx-opt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "onnx-opt"
        return _fail(f"{where}: {exc.format_message()} (see '{where} --help')", 2)
    except click.ClickException as exc:
        return _fail(exc.format_message(), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if "--debug" in args:
            raise
        if _is_user_error(exc):
            return _fail(f"error: {' '.join(str(exc).split())}", 2)
        detail = f"{type(exc).__name__}: {error_line(exc)}"
        return _fail(f"internal error: {detail} (rerun with --debug for the traceback)", 1)
    return result if isinstance(result, int) else 0


def _is_user_error(exc: Exception) -> bool:
    if isinstance(exc, UserError):
        return True
    from profiles.errors import ProfileError

    return isinstance(exc, ProfileError)


def _fail(message: str, status: int) -> int:
    click.echo(f"onnx-opt: {message}", err=True)
    return status
