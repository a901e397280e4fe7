"""Errors meant for people: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input or usage. The message is one clear line for the user."""
