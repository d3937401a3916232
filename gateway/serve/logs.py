"""Logging inside a Serve replica: Lethe's loggers at the level and in the format `lethe serve` chose.

Ray Serve configures its own `ray.serve` logger from the app's `LoggingConfig` (access log off by
default: no line per long-poll or ack between replicas). Lethe's loggers (`gateway.*`) write to the
replica's stderr, which Ray keeps in the worker's log file and forwards to the driver; their records
carry the Serve request id while a request is handled, and never its text.
"""

from __future__ import annotations

import logging
import sys

from gateway.observability.logs import formatter, settings_from_env

_HANDLER_NAME = "lethe-replica"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (Serve's, the one in its access log and in `x-request-id`) to a record
    logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            try:
                from ray.serve.context import _get_serve_request_context

                request_id = _get_serve_request_context().request_id
            except Exception:  # outside a request, or another Ray release: the line goes out without it
                request_id = ""
            if request_id:
                record.request_id = request_id
        return True


def configure_replica_logs() -> None:
    """Idempotent: the `gateway` logger of this worker gets one stderr handler at LETHE_LOG_LEVEL in
    LETHE_LOG_FORMAT, and stops propagating (Ray's root handler would print each line twice)."""
    level, fmt = settings_from_env()
    logger = logging.getLogger("gateway")
    logger.setLevel(level)
    if any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(fmt, "%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.propagate = False
