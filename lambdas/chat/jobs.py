"""The chat sweeper and the knowledge indexer, as the jobs Lambda registers them
(``lambdas/jobs/handler.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from lambdas.chat.constants import INDEX_BATCH_ROWS, RESERVATION_TTL_S
from lambdas.chat.knowledge_repository import index_pending
from lambdas.chat.quota_repository import release_stale
from lambdas.shared.db import UnitOfWork
from lambdas.shared.scope import RequestScope


def release_chat_reservations_job(scope: Callable[[], RequestScope]) -> Callable[[], int]:
    """``release_chat_reservations``: in every tenant, free the tokens of reservations that
    expired unsettled (their invocation died before its answer or its release) and hand back
    the questions those invocations left 'answering' (approved ones to 'pending', to be
    resumed; others 'failed'). Returns how many reservations and questions it released."""

    def run() -> int:
        with scope() as run_scope, UnitOfWork(run_scope, None) as uow:
            released = release_stale(
                uow.conn, answers_older_than=timedelta(seconds=RESERVATION_TTL_S)
            )
            uow.commit()
        return released

    return run


def index_chat_embeddings_job(
    scope: Callable[[], RequestScope], *, batch: int = INDEX_BATCH_ROWS
) -> Callable[[], int]:
    """``index_chat_embeddings``: insert up to ``batch`` of the vectors the ingestion Lambda
    stored unindexed into the HNSW graph, in every tenant. Until then searches compare them
    exactly. Returns how many it indexed."""

    def run() -> int:
        with scope() as run_scope, UnitOfWork(run_scope, None) as uow:
            indexed = index_pending(uow.conn, limit=batch)
            uow.commit()
        return indexed

    return run
