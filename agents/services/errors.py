"""Errors the engine's services raise to their callers (pages, tasks, tests)."""


class InvalidTransition(Exception):
    """The row is not in a state this transition starts from; nothing was written."""


class InvalidToolInput(Exception):
    """A reviewer's edited input does not fit the tool's input model; nothing was written."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []
