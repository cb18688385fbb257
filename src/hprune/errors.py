"""User-facing errors: the CLI prints them as one line `error: ...` and exits with status 2."""


class HpruneError(Exception):
    """A problem with the user's input or setup; the message names the problem and the fix."""


class Interrupted(KeyboardInterrupt):
    """The job stopped before it finished: SIGTERM, or a worker process, Ray task or rank that was killed.
    What was saved is whole; the CLI prints `interrupted: run the same command to resume` and exits with
    `status` (a KeyboardInterrupt, so that no `except Exception` in a library swallows it)."""

    def __init__(self, status: int = 143):
        super().__init__(status)
        self.status = status
