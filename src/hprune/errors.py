"""User-facing errors: the CLI prints them as one line `error: ...` and exits with status 2."""


class HpruneError(Exception):
    """A problem with the user's input or setup; the message names the problem and the fix."""
