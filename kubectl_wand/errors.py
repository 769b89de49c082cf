"""Errors the user sees: what happened, a hint for what to do, an exit status."""


class WandError(Exception):
    """A failure with a message and a remedy; exit status 1 unless said otherwise."""

    exit_code = 1

    def __init__(self, message, hint=None, *, code=None, exit_code=None, detail=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.detail = detail
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(WandError):
    """Bad input from the user (exit status 2)."""

    exit_code = 2
