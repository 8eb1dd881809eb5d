"""Mistakes a user of the harness can fix: every verb prints them as one line and exits 2."""

from rcnn.errors import USER_ERRORS as LIBRARY_USER_ERRORS


class UsageError(ValueError):
    """A command line the harness cannot run; the message says what to change."""


USER_ERRORS: tuple[type[Exception], ...] = (UsageError, *LIBRARY_USER_ERRORS)
