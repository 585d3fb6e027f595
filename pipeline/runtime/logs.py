"""One logging setup for every ERIOP process (Faust's loggers included)."""

from __future__ import annotations

import logging
import sys
from typing import Final

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def configure(level: str) -> None:
    """Log to stderr at ``level`` (one of :data:`LEVELS`), replacing any earlier setup."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    logging.basicConfig(
        level=getattr(logging, level.upper()), format=FORMAT, stream=sys.stderr, force=True
    )
