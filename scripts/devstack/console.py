"""Short human log lines for `make dev`'s console (on AWS the same loggers write JSON).

``make dev`` sets DEV_HUMAN_LOGS=1 for itself and for every execution environment it starts;
each calls ``human_logs()`` once its handler module has created the Powertools logger.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from typing import Any, Final

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

ENV_FLAG: Final = "DEV_HUMAN_LOGS"
# What a log record carries beside the message that is worth one short line.
_SHOWN: Final = ("code", "error", "file", "version", "action", "execution_ms")


class HumanFormatter(LambdaPowertoolsFormatter):
    """``12:00:01 INFO  billing    message  key=value``: Powertools' own record (appended
    keys, extras, exception) in one line instead of a JSON document."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = json.loads(super().format(record))
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        source = str(fields.get("function_name") or record.name).removeprefix("alquimista-dev-")
        tail = "  ".join(f"{k}={fields[k]}" for k in _SHOWN if k in fields)
        line = f"{stamp} {record.levelname:<5} {source:<10} {record.getMessage()}"
        if tail:
            line += f"  {tail}"
        if "exception" in fields and record.levelno >= logging.ERROR:
            line += "\n" + str(fields["exception"])
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
        console.setFormatter(HumanFormatter())
        stack.addHandler(console)
        stack.setLevel(logging.INFO)
        stack.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)
