"""Write docs/events.md from the event catalog in lambdas/shared/events.py (or check that it is
current; a unit test runs the check).

Examples:
  uv run python scripts/export_events.py            # rewrite docs/events.md
  uv run python scripts/export_events.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.shared import events  # noqa: E402
from lambdas.shared.constants import OUTBOX_EVENT_SOURCE  # noqa: E402
from scripts.devstack.generated_docs import write_or_check  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "events.md"

_LIFECYCLE = f"""
## Envelope on the bus

The relay publishes each outbox row to the environment's EventBridge bus
(`alquimista-<env>-events`) with `Source` = `{OUTBOX_EVENT_SOURCE}`, `DetailType` = the event
name and this `Detail`:

```json
{{
  "event_id": "uuid: the outbox row id; deduplicate by it",
  "event_type": "agent.activated",
  "version": 1,
  "tenant_id": "uuid, or null for a platform event",
  "aggregate": {{"type": "agent", "id": "…", "seq": 3}},
  "occurred_at": "ISO 8601 time the event was written",
  "payload": {{"…": "the schema of the event's version, below"}}
}}
```

## Delivery guarantees

- Written in the same transaction as the change (`OutboxWriter.emit` →
  `alquimista_platform.outbox_append_v1`; a change recorded by `UnitOfWork.record` sends its
  event in the same statement as its audit row, `ChangeWriter.record`, docs/audit.md; a batch's
  `OutboxWriter.emit_many` → `outbox_append_many_v1`, one statement, the same checks and seqs):
  a rolled back change leaves no event.
- At least once: a relay that dies between `PutEvents` and marking the row publishes the same
  `event_id` again once its claim expires. Consumers deduplicate by `event_id` (the activity
  feed keys each item by it and writes with a conditional put).
- Per aggregate in `seq` order: `seq` is gap-free per (tenant, aggregate type, aggregate id) and
  follows commit order; the relay never publishes seq n+1 while seq n is pending or inflight
  (also while n backs off after a failure). EventBridge itself does not order deliveries, so a
  consumer that needs order compares `seq`.
- A failed publish backs off attempt⁴ s ± 10 % (capped at one hour); after
  `OUTBOX_MAX_ATTEMPTS` (default 8) claims, or on a permanent error (`MalformedDetail`,
  `ValidationException`, an entry over 256 KiB), the row is `dead`: an alarm fires, and later
  events of the aggregate are released (consumers see the gap in `seq`).

Row states: `pending` → `inflight` (claimed, with `claimed_until`) → `published`, or back to
`pending` (failure with backoff, or an expired claim), or `dead`.

Projections are rebuilt from the published rows:
`uv run python scripts/outbox.py replay --projection activity [--tenant <uuid>]`.
"""


def _schema(spec: events.EventSpec) -> str:
    schema = spec.payload.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return json.dumps(schema, indent=2, sort_keys=True)


def render() -> str:
    convention = inspect.getdoc(events) or ""
    lines = [
        "# Domain events",
        "",
        "Generated from `lambdas/shared/events.py` by `scripts/export_events.py`; a unit test "
        "fails when this file is stale.",
        "",
        "## Convention",
        "",
        convention.split("\n\n", 1)[1] if "\n\n" in convention else convention,
        _LIFECYCLE.rstrip(),
        "",
        "## Catalog",
        "",
        "| Event | Version | Aggregate | Meaning |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{s.name}` | {s.version} | `{s.aggregate_type}` | {s.description} |"
        for s in events.CATALOG
    ]
    for spec in events.CATALOG:
        lines += [
            "",
            f"### `{spec.name}` v{spec.version}",
            "",
            spec.description,
            "",
            "```json",
            _schema(spec),
            "```",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        argv,
        description=__doc__,
        default_output=DEFAULT_OUTPUT,
        render=render,
        regenerate="scripts/export_events.py",
    )


if __name__ == "__main__":
    sys.exit(main())
