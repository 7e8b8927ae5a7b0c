"""The audit log's SQL: reading pages and whole chains, the heads, and the unit of work."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Generator, Sequence
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from lambdas.audit.models import AuditEntry, AuditFilters, TenantHead
from lambdas.shared.audit import Anchor, AuditRow, JsonText, RangeCheck, VerifyResult, verify_chain
from lambdas.shared.db import Connection, UnitOfWork, set_tenant

# The verifier's columns, in the text COPY streams: ids as text (what is hashed), the timestamp
# in its hashed form (the builtin to_char, as audit_timestamp_v1 writes it), the metadata as
# jsonb's text (the verifier parses it: a JSON parser reads text faster than a row decoder
# builds objects) and the hashes in hex. The tenant id is the one the statement filters on.
# COPY streams while the verifier hashes, so the server's work and the client's overlap.
_STREAM_SQL = """
    COPY (
        SELECT seq, id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               actor_user_id,
               actor_type, action, resource_type, resource_id, outcome, request_id, metadata,
               encode(prev_hash, 'hex'), encode(payload_hash, 'hex'), encode(row_hash, 'hex'),
               hash_version
        FROM alquimista_platform.audit_logs
        WHERE tenant_id = {tenant} AND seq >= {from_seq} AND seq <= {to_seq}
        ORDER BY seq
    ) TO STDOUT
"""

# COPY's text format writes NULL as \N and escapes these characters with a backslash.
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE = re.compile(r"\\(.)")


# actor_user_id, resource_id, request_id: the stream's only nullable columns, none of them last
_NULLABLE = (3, 7, 9)


def _copy_field(text: str) -> str | None:
    if text == "\\N":
        return None
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m[1], m[1]), text)


def _stream_row(tenant: str, line: str) -> AuditRow:
    """One line of the COPY text stream (without its newline) as an AuditRow."""
    fields: list[Any] = line.split("\t")
    if "\\" in line:
        if line.count("\\") == line.count("\\N\t"):  # NULLs only (an escape adds a backslash)
            for i in _NULLABLE:
                if fields[i] == "\\N":
                    fields[i] = None
        else:
            fields = [_copy_field(field) if "\\" in field else field for field in fields]
    (seq, id_, at, actor, actor_type, action, resource_type, resource_id, outcome, request_id,
     metadata, prev_hash, payload_hash, row_hash, version) = fields  # fmt: skip
    return AuditRow(
        id_,
        tenant,
        int(seq),
        at,
        actor,
        actor_type,
        action,
        resource_type,
        resource_id,
        outcome,
        request_id,
        None if metadata is None else JsonText(metadata),
        bytes.fromhex(prev_hash),
        bytes.fromhex(payload_hash),
        bytes.fromhex(row_hash),
        int(version),
    )


class AuditRepository:
    """One tenant's audit log (RLS scopes every statement; the filters say so as well)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def stream(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Generator[AuditRow, None, None]:
        """The tenant's rows in seq order, streamed by COPY (constant memory). A consumer that
        stops early (the verifier, at the first bad row) cancels the COPY; the savepoint keeps
        the caller's transaction usable after it."""
        statement = sql.SQL(_STREAM_SQL).format(
            tenant=sql.Literal(str(self._tenant_id)),
            from_seq=sql.Literal(from_seq),
            to_seq=sql.Literal(to_seq if to_seq is not None else 2**63 - 1),
        )
        tenant = str(self._tenant_id)
        with self._conn.transaction(), self._conn.cursor().copy(statement) as copy:
            for data in copy:
                yield _stream_row(tenant, str(data, "utf-8")[:-1])

    def last_seq(self, to_seq: int | None = None) -> int | None:
        """The highest stored seq (up to ``to_seq``), None when there is none."""
        row = self._conn.execute(
            """
            SELECT max(seq) AS seq FROM alquimista_platform.audit_logs
            WHERE tenant_id = %s AND seq <= %s
            """,
            (self._tenant_id, to_seq if to_seq is not None else 2**63 - 1),
        ).fetchone()
        return row["seq"] if row else None

    def verify_ranges(self, checks: Sequence[RangeCheck]) -> list[VerifyResult | None]:
        """Verify each range in a process of its own (forked: the hashing is Python's, and one
        interpreter runs on one core), each streaming its rows on its own connection. Every
        process reads the snapshot this transaction exports, so all ranges, and the stored
        hashes they start from, see one state of the chain. A range whose starting hash is
        missing (the row before it) gives None."""
        row = self._conn.execute("SELECT pg_catalog.pg_export_snapshot() AS id").fetchone()
        if row is None:
            raise LookupError("pg_export_snapshot returned no row")
        conninfo = _conninfo_like(self._conn)
        context = multiprocessing.get_context("fork")
        workers: list[tuple[Any, Pipe]] = []
        try:
            for check in checks:
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_verify_range_process,
                    args=(sender, conninfo, row["id"], self._tenant_id, check),
                    daemon=True,
                )
                process.start()
                sender.close()
                workers.append((process, receiver))
            return [_range_result(receiver) for _, receiver in workers]
        finally:
            for process, receiver in workers:
                receiver.close()
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join()

    def row_hash_at(self, seq: int) -> bytes | None:
        row = self._conn.execute(
            """
            SELECT row_hash FROM alquimista_platform.audit_logs
            WHERE tenant_id = %s AND seq = %s
            """,
            (self._tenant_id, seq),
        ).fetchone()
        return bytes(row["row_hash"]) if row else None

    def head(self) -> Anchor | None:
        """The database's own head row for the tenant (None before the first append)."""
        row = self._conn.execute(
            """
            SELECT seq, row_hash, updated_at FROM alquimista_platform.audit_heads
            WHERE tenant_id = %s AND seq > 0
            """,
            (self._tenant_id,),
        ).fetchone()
        if row is None:
            return None
        return Anchor(
            tenant_id=self._tenant_id,
            seq=row["seq"],
            row_hash=bytes(row["row_hash"]).hex(),
            at=row["updated_at"],
            source="database head",
        )

    def page(self, filters: AuditFilters, *, after_seq: int | None, limit: int) -> list[AuditEntry]:
        """Up to ``limit`` rows, newest first, with seq below ``after_seq`` (keyset)."""
        rows = self._conn.execute(
            """
            SELECT id, seq, occurred_at, actor_user_id, actor_type, action, resource_type,
                   resource_id, outcome, request_id, metadata, prev_hash, payload_hash, row_hash
            FROM alquimista_platform.audit_logs
            WHERE tenant_id = %(tenant)s
              AND (%(after)s::bigint IS NULL OR seq < %(after)s)
              AND (%(actor)s::uuid IS NULL OR actor_user_id = %(actor)s)
              AND (%(action)s::text IS NULL OR action = %(action)s)
              AND (%(resource_type)s::text IS NULL OR resource_type = %(resource_type)s)
              AND (%(resource_id)s::text IS NULL OR resource_id = %(resource_id)s)
              AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s)
              AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)
            ORDER BY seq DESC
            LIMIT %(limit)s
            """,
            {
                "tenant": self._tenant_id,
                "after": after_seq,
                "actor": filters.actor_id,
                "action": filters.action,
                "resource_type": filters.resource_type,
                "resource_id": filters.resource_id,
                "since": filters.since,
                "until": filters.until,
                "limit": limit,
            },
        ).fetchall()
        return [_entry(row) for row in rows]


class RangeVerificationFailed(RuntimeError):
    """A range's process failed (it could not connect, read or finish), not the chain."""


def _conninfo_like(conn: Connection) -> str:
    """How to open another connection like ``conn`` (same server, database, role)."""
    return psycopg.conninfo.make_conninfo(conn.info.dsn, password=conn.info.password)


def _range_result(receiver: Pipe) -> VerifyResult | None:
    try:
        outcome = receiver.recv()
    except EOFError:
        raise RangeVerificationFailed(
            "a range's verifying process ended without a result"
        ) from None
    if outcome is not None and not isinstance(outcome, VerifyResult):
        raise RangeVerificationFailed(f"a range's verifying process failed: {outcome}")
    return outcome


def _verify_range_process(
    sender: Pipe, conninfo: str, snapshot: str, tenant_id: UUID, check: RangeCheck
) -> None:
    """A forked process: verify ``check`` in ``snapshot`` on a connection of its own, and send
    the result (None: the row before the range is missing; or the error's text) back. The
    parent's connection is never touched here."""
    try:
        with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            set_tenant(conn, tenant_id)
            repository = AuditRepository(conn, tenant_id)
            prev_hash = check.prev_hash or repository.row_hash_at(check.from_seq - 1)
            result = (
                verify_chain(
                    repository.stream(check.from_seq, check.to_seq),
                    from_seq=check.from_seq,
                    prev_hash=prev_hash,
                    to_seq=check.to_seq,
                    anchors=check.anchors,
                )
                if prev_hash is not None
                else None
            )
            conn.execute("COMMIT")
        sender.send(result)
    except Exception as exc:  # sent to the parent, which raises it
        sender.send(f"{type(exc).__name__}: {exc}")
    finally:
        sender.close()


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        actor_id=row["actor_user_id"],
        actor_type=row["actor_type"],
        action=row["action"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        outcome=row["outcome"],
        request_id=row["request_id"],
        details=row["metadata"],
        prev_hash=bytes(row["prev_hash"]).hex(),
        payload_hash=bytes(row["payload_hash"]).hex(),
        row_hash=bytes(row["row_hash"]).hex(),
    )


class AuditHeadsRepository:
    """Every tenant's head, for anchoring (through the SECURITY DEFINER function: the job runs
    with no tenant scope, and RLS would show it nothing)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def all_heads(self) -> list[TenantHead]:
        rows = self._conn.execute(
            """
            SELECT tenant_id, seq, row_hash, updated_at FROM alquimista_platform.audit_heads_v1()
            """
        ).fetchall()
        return [
            TenantHead(
                tenant_id=row["tenant_id"],
                seq=row["seq"],
                row_hash=bytes(row["row_hash"]).hex(),
                updated_at=row["updated_at"],
            )
            for row in rows
        ]

    def now(self) -> datetime:
        row = self._conn.execute("SELECT now() AS now").fetchone()
        if row is None:
            raise LookupError("SELECT now() returned no row")
        value: datetime = row["now"]
        return value


class AuditUnitOfWork(UnitOfWork):
    """A tenant's audit log (routes), or every tenant's heads (the anchoring job, no tenant)."""

    log: AuditRepository
    heads: AuditHeadsRepository

    def _on_enter(self) -> None:
        if self.tenant_id is not None:
            self.log = AuditRepository(self.conn, self.tenant_id)
        self.heads = AuditHeadsRepository(self.conn)
