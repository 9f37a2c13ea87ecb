"""Logging: structlog, JSON in production and console in development.

Every line emitted while a request is served carries its ``request_id`` (bound in a contextvar by
the web middleware). A redaction processor runs last before rendering so that no key, secret,
signature, token or authorization value reaches the output even if a caller passes one by mistake;
and every rendered line, ours or a library's (httpx logs each request's URL at info), has our
key shapes and the tokens of callback URLs (``/callbacks/<provider>/<token>``) cut out.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from service.core import compactjson

_SENSITIVE = re.compile(
    r"(secret|password|passwd|token|signature|authorization|api_key|apikey|raw_key|cookie)",
    re.IGNORECASE,
)
_KEY_SHAPE = re.compile(r"(thk_[a-z0-9]{12}_)[A-Za-z0-9_-]+|(whsec_)[A-Za-z0-9+/=]+")
#: the segment after a provider's name in a callback URL is its token, a credential for one
#: task (provider names have no "_", so ``/v1/callbacks/cb_…/replay`` is left alone)
_CALLBACK_TOKEN = re.compile(r"(/callbacks/[A-Za-z][A-Za-z0-9-]*/)[^\s\"'?#/\\]+")
REDACTED = "[redacted]"


@functools.lru_cache(maxsize=1024)
def _sensitive(name: str) -> bool:
    return _SENSITIVE.search(name) is not None


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)) + "…"


def _masked(text: str) -> str:
    """``text`` with key shapes masked and callback tokens cut; only a marker means a search."""
    if "thk_" in text or "whsec_" in text:
        text = _KEY_SHAPE.sub(_mask, text)
    if "/callbacks/" in text:
        text = _CALLBACK_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    return text


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank values under sensitive names and mask anything shaped like one of our secrets.

    Runs on every line, so the cheap tests go first: key names repeat (their verdict is
    cached), and only a string holding a marker is searched."""
    for name, value in event.items():
        if _sensitive(name):
            event[name] = REDACTED
        elif isinstance(value, str):
            event[name] = _masked(value)
    return event


def _masking(renderer: Any) -> Any:
    """``renderer``, its line then masked as a whole: what ``redact`` cannot see (a value inside
    a list, a library's traceback) is covered too."""

    def render(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        return _masked(renderer(logger, method, event))

    return render


class _StderrLogger:
    """Prints to whatever ``sys.stderr`` is at the time of the call (tests swap it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def _log_json(event: Any, **_options: Any) -> str:
    """One line of JSON; anything no encoder knows is written as its ``repr``, so a log call
    never raises."""
    try:
        return compactjson.dumps(event)
    except TypeError:
        return json.dumps(event, default=repr, ensure_ascii=False)


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(fmt: str, level: str) -> None:
    """Set up structlog (and route stdlib logging, e.g. uvicorn's, through the same output)."""
    level_no = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = _masking(
        structlog.processors.JSONRenderer(serializer=_log_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # a library's traceback, as text
                redact,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level_no)
    # aiosqlite logs every statement at debug: noise, and it would show SQL parameters.
    logging.getLogger("aiosqlite").setLevel(max(level_no, logging.INFO))


def get_logger(name: str) -> Logger:
    return Logger(name)


class Logger:
    """A named logger, bound once per logging configuration.

    structlog's lazy proxy (what ``structlog.get_logger`` returns) builds a new bound logger on
    every call: ~3 µs, paid even by a debug line filtered out at info, once per delivery on the
    worker's hot path. This one binds on first use and again only when structlog's
    configuration has changed since (``configure_logging``, or a test resetting it), so a
    module-level logger still follows the configuration in force."""

    __slots__ = ("_bound", "_config", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._config: tuple[object, ...] = ()

    def _current(self) -> Any:
        config = structlog.get_config()
        current = (config["processors"], config["wrapper_class"], config["logger_factory"])
        if current != self._config:  # by identity first: the same objects while unchanged
            self._bound = structlog.get_logger(self._name).bind()
            self._config = current
        return self._bound

    def debug(self, event: str, **values: Any) -> None:
        self._current().debug(event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._current().info(event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._current().warning(event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._current().error(event, **values)

    def exception(self, event: str, **values: Any) -> None:
        """At error, with the exception being handled."""
        self._current().exception(event, **values)
