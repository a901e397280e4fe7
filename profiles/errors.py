"""The one error type of the profiles package."""


class ProfileError(ValueError):
    """A path that is not a readable profile; the message is one line naming the path."""
