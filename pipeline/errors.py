"""The pipeline's one error hierarchy.

::

    EriopError                      (error_code, retryable, stage)
    ├── InputError                  the message itself is bad: dead-letter it, never retry
    │   ├── DecodeError             stage "decode":    oversize, not_utf8, not_json, ...
    │   ├── ValidationError         stage "validate":  missing_field, invalid_value, ...
    │   ├── NormalizeError          stage "normalize": unknown_device
    │   └── WriteRejected           stage "write":     the database refused the row for good
    │       └── RecordRejected      ... one record of a batch, named by its index
    ├── TransientError              a dependency is down or slow: pause, back off, retry
    │   ├── DatabaseUnavailable
    │   ├── RedisUnavailable
    │   ├── BrokerUnavailable
    │   └── UpstreamUnavailable     a front door's sender side (MQTT broker, CAP feed)
    └── ConfigError                 the operator's settings are wrong: refuse to start

Every process exits with one of the codes below; an error that stops a
process carries its own (``exit_code``).

Third-party exceptions are translated into these at the adapter that meets them
(the sinks and the broker adapters), nowhere else. ``error_code`` is a short,
low-cardinality string that is safe as a metric label; ``reason`` is for humans
and never carries a key, a secret or decrypted text.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

Stage = Literal["decode", "validate", "normalize", "write"]

#: Every code a dead letter may carry (docs/formats.md section 7), with its stage.
ERROR_CODES: Final[dict[str, Stage | None]] = {
    "oversize": "decode",
    "not_utf8": "decode",
    "not_json": "decode",
    "not_xml": "decode",
    "unknown_format": "decode",
    "bad_checksum": "decode",
    "encrypted_no_key": "decode",
    "decrypt_failed": "decode",
    "missing_field": "validate",
    "invalid_value": "validate",
    "value_out_of_range": "validate",
    "timestamp_out_of_window": "validate",
    "nul_in_text": "validate",
    "unknown_device": "normalize",
    "write_rejected": "write",
    "internal_error": None,
}

MAX_REASON_CHARS: Final = 500

#: process exit codes (documented in docs/operations.md, "Exit codes")
EXIT_OK: Final = 0
#: the command ran and failed (a test that did not pass, a bench that broke, ...)
EXIT_FAILURE: Final = 1
#: the command line itself is wrong (argparse's own code)
EXIT_USAGE: Final = 2
#: a dependency (Kafka, PostgreSQL, Redis, MQTT, HTTP) stayed unreachable (sysexits EX_UNAVAILABLE)
EXIT_UNAVAILABLE: Final = 69
#: the settings or environment are invalid (sysexits EX_CONFIG)
EXIT_CONFIG: Final = 78


class EriopError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = EXIT_FAILURE
    error_code: str = "internal_error"

    def __init__(self, reason: str, *, error_code: str | None = None) -> None:
        if error_code is not None:
            self.error_code = error_code
        self.reason = reason[:MAX_REASON_CHARS]
        super().__init__(self.reason)


class InputError(EriopError):
    """The message cannot become a record; it goes to the dead-letter topic."""

    stage: ClassVar[Stage] = "decode"

    def __init__(self, error_code: str, reason: str) -> None:
        if error_code not in ERROR_CODES:
            raise ValueError(f"unknown error code {error_code!r}")
        super().__init__(reason, error_code=error_code)


class DecodeError(InputError):
    stage: ClassVar[Stage] = "decode"


class ValidationError(InputError):
    stage: ClassVar[Stage] = "validate"


class NormalizeError(InputError):
    stage: ClassVar[Stage] = "normalize"


class WriteRejected(InputError):
    stage: ClassVar[Stage] = "write"

    def __init__(self, reason: str) -> None:
        super().__init__("write_rejected", reason)


class RecordRejected(WriteRejected):
    """One record of a batch refused for good (``index`` in the batch); the batch
    was rolled back and is retried without it once it is dead-lettered."""

    def __init__(self, index: int, error: WriteRejected) -> None:
        super().__init__(error.reason)
        self.index = index
        self.error = error


class TransientError(EriopError):
    """A dependency failed in a way that a later attempt may not."""

    retryable: ClassVar[bool] = True
    exit_code: ClassVar[int] = EXIT_UNAVAILABLE
    error_code = "dependency_unavailable"


class DatabaseUnavailable(TransientError):
    error_code = "database_unavailable"


class RedisUnavailable(TransientError):
    error_code = "redis_unavailable"


class BrokerUnavailable(TransientError):
    error_code = "broker_unavailable"


class UpstreamUnavailable(TransientError):
    """An MQTT broker or a CAP feed failed; ``error_code`` names how (timeout, http_status, ...)."""

    error_code = "upstream_unavailable"


class StaleExtensionWarning(EriopError, RuntimeWarning):
    """A compiled module's source changed after the build; the source runs
    (:mod:`pipeline.compiled`)."""


class ConfigError(EriopError):
    """Settings or environment that the worker must not run with."""

    exit_code: ClassVar[int] = EXIT_CONFIG
    error_code = "config_error"
