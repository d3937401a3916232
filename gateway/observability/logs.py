"""Lethe's own log lines: one level and one format (text or JSON lines) per process, chosen once.

`lethe serve` configures its process from `logs.level` / `logs.format` (flags `--log-level`,
`--log-json`), and passes both to every Ray replica through `LETHE_LOG_LEVEL` / `LETHE_LOG_FORMAT`;
each replica configures itself from them when it starts (`gateway.serve.logs`). Ray Serve's own
lines (its access log, its controller) follow the same settings through Serve's `LoggingConfig`.

What a line may carry: an event, ids (request, replica, job, version) and numbers; never a prompt,
an output or the text of a forget request. A record with a `request_id` attribute (Serve's request
context, added by the replica's filter) carries it in both formats.

>>> configure_logging("INFO", "json", stream=io.StringIO())
>>> logging.getLogger("gateway.weights").info("now serving %s", "v-2")   # {"ts": ..., "message": "now serving v-2"}
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Literal

LogFormat = Literal["text", "json"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes of every LogRecord: whatever else a record carries was added by a filter or `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Loggers that log per request or per poll at INFO: kept at WARNING unless DEBUG is asked for.
CHATTY = ("httpx", "httpcore", "urllib3", "filelock", "asyncio")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` (UTC, ISO 8601), `level`, `logger`, `message`, and the extra
    attributes of the record (`request_id`, `replica`, …) when they are plain values."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, str | int | float | bool):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def formatter(fmt: LogFormat, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(text_format)


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat = "text",
    *,
    stream: IO[str] | None = None,
    text: logging.Formatter | None = None,
) -> None:
    """The root logger writes `fmt` lines at `level` to `stream` (default stderr), text lines with
    `text` when given; replaces earlier handlers, so calling it again just changes the setting."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(text if fmt == "text" and text is not None else formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")


def settings_from_env(env: dict[str, str] | None = None) -> tuple[str, LogFormat]:
    """(level, format) from LETHE_LOG_LEVEL / LETHE_LOG_FORMAT, as `lethe serve` hands them to replicas."""
    env = dict(os.environ) if env is None else env
    level = env.get("LETHE_LOG_LEVEL", "INFO").upper()
    fmt: LogFormat = "json" if env.get("LETHE_LOG_FORMAT", "text").lower() == "json" else "text"
    return (level if level in LEVELS else "INFO"), fmt
