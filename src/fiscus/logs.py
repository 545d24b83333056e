"""Structured JSON logs on stderr, one object per line, for every logger in the process.

structlog's own loggers and the standard library's (uvicorn's startup and error lines, SQLAlchemy,
our modules' `logging.getLogger`) share one JSON renderer, so a log shipper never meets a plain-text
line. uvicorn's own access log is off: `ObservabilityMiddleware` writes one line per request with the
request id."""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

import structlog

_STAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)


def json_formatter() -> logging.Formatter:
    """A stdlib formatter rendering records as the same JSON objects structlog writes."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            _STAMP,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


UVICORN_LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "fiscus.logs.json_formatter"}},
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
"""`log_config` for `uvicorn.run`: its startup lines ("Uvicorn running on …", worker processes) in JSON."""


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        for h in uv.handlers:
            h.setFormatter(json_formatter())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _STAMP,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
