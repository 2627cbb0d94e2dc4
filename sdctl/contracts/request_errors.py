"""The one error a request that breaks the wire contract raises, naming its field."""

from __future__ import annotations


class Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message
