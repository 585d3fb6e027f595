"""One logging setup for every ERIOP process (its libraries' loggers included).

``text`` is a line per record for people; ``json`` is one JSON object per
line for log collectors, with whatever context a record carries (``topic``,
``partition`` and ``offset`` on messages about one Kafka record).
"""

from __future__ import annotations

import logging
import sys
from typing import Final

from pythonjsonlogger.json import JsonFormatter

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
JSON_FIELDS: Final = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def configure(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level`` (one of :data:`LEVELS`) in ``fmt`` (:data:`FORMATS`)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
