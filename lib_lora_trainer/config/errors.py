"""The one error type of the config package."""

from __future__ import annotations


class ConfigError(ValueError):
    """A training setting that cannot be used. `field` names it (None: the config as a whole);
    the message names the field, the value and the fix, ready to show to a user."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
