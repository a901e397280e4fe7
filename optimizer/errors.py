"""Errors meant for people: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input or usage. The message is one clear line for the user."""


def error_line(exc: BaseException, *, last: bool = False) -> str:
    """One line of an exception's message for a report (the first, or the last), else its type."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[-1] if last else lines[0]
