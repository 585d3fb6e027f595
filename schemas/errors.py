"""The one error a schema raises: a field that cannot be accepted.

It carries the dead-letter code of docs/formats.md section 7 (``invalid_value``,
``missing_field``, ``value_out_of_range``, ...) and a reason naming the field.
It is a ``ValueError``, so pydantic reports it as a field error and keeps the
original in the error's context; the pipeline's decoders turn it into their
own ``ValidationError`` with the same code.
"""

from __future__ import annotations


class FieldError(ValueError):
    """A field's value is not acceptable; ``error_code`` says how."""

    def __init__(self, error_code: str, reason: str) -> None:
        self.error_code = error_code
        self.reason = reason
        super().__init__(reason)
