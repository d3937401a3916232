"""Log lines: text or JSON, request ids carried, chatty client loggers held at WARNING."""

from __future__ import annotations

import io
import json
import logging

from gateway.observability.logs import configure_logging, settings_from_env


def test_json_lines_carry_level_logger_message_and_request_id():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        logging.getLogger("gateway.weights").info("now serving %s", "v-2", extra={"request_id": "req-1"})
        logging.getLogger("gateway.weights").debug("not at INFO")
        logging.getLogger("httpx").info("HTTP Request: POST …")  # one line per call: kept out
    finally:
        configure_logging("WARNING", "text")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    (line,) = lines
    assert line["level"] == "INFO" and line["logger"] == "gateway.weights"
    assert line["message"] == "now serving v-2" and line["request_id"] == "req-1"
    assert line["ts"].endswith("Z")


def test_settings_from_env_defaults_and_bad_values():
    assert settings_from_env({}) == ("INFO", "text")
    assert settings_from_env({"LETHE_LOG_LEVEL": "debug", "LETHE_LOG_FORMAT": "JSON"}) == ("DEBUG", "json")
    assert settings_from_env({"LETHE_LOG_LEVEL": "loud"}) == ("INFO", "text")
