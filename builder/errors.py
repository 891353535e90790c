"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""


class BuildError(Exception):
    """The build cannot go on; the message says what is wrong, where, and how to fix it."""
