"""Short human log lines for `make dev`'s console (on AWS the same loggers write JSON).

``make dev`` sets DEV_HUMAN_LOGS=1 for itself and for every execution environment it starts;
each calls ``human_logs()`` once its handler module has created the Powertools logger.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, Final

ENV_FLAG: Final = "DEV_HUMAN_LOGS"
# What a log record carries beside the message that is worth one short line.
_SHOWN: Final = ("function_name", "code", "error", "file", "version", "action", "execution_ms")
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})))


class HumanFormatter(logging.Formatter):
    """``12:00:01 INFO  billing  message  key=value``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra: dict[str, Any] = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and k in _SHOWN
        }
        source = str(extra.pop("function_name", record.name)).removeprefix("alquimista-dev-")
        tail = "  ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{stamp} {record.levelname:<5} {source:<10} {record.getMessage()}"
        if tail:
            line += f"  {tail}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return line


def enabled() -> bool:
    return os.environ.get(ENV_FLAG) == "1"


def human_logs() -> None:
    """Give the platform's Powertools logger (and the stack's own loggers) human lines."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from lambdas.shared.observability import logger  # noqa: PLC0415

    formatter = HumanFormatter()
    for handler in logger.handlers:
        handler.setFormatter(formatter)
    stack = logging.getLogger("gateway")
    if not stack.handlers:
        console = logging.StreamHandler()
        console.setFormatter(formatter)
        stack.addHandler(console)
        stack.setLevel(logging.INFO)
        stack.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)
