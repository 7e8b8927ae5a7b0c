from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from datetime import UTC, date, datetime
    from typing import Annotated, Any
    from uuid import UUID

    import boto3
    from aws_lambda_powertools.event_handler.openapi.params import Path, Query
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.chat import conversations, documents, service
    from lambdas.chat.errors import (
        LlmProviderError,
        LlmUnavailable,
        SessionClosed,
        SessionNotFound,
        TokenQuotaExceeded,
        UnsupportedDocument,
    )
    from lambdas.chat.llm import LlmGateway
    from lambdas.chat.schemas import (
        CreateDocumentRequest,
        CreateSessionRequest,
        DocumentPage,
        DocumentResponse,
        DocumentUploadResponse,
        FeedbackRequest,
        FeedbackResponse,
        HistoryResponse,
        MessageExchange,
        MessageResponse,
        SendMessageRequest,
        SessionPage,
        SessionResponse,
        UsageResponse,
        VerdictResponse,
    )
    from lambdas.chat.unit_of_work import ChatUnitOfWork, QuestionEmbedder
    from lambdas.chat.uploads import S3Uploads
    from lambdas.shared.cursors import InvalidCursor
    from lambdas.shared.errors import error_responses
    from lambdas.shared.gate import ActionBlocked, ApprovalWithdrawn
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime
    from lambdas.shared.settings import ChatSettings

app = create_resolver()

# The execution environment's gateway, rebuilt when the runtime's settings are (a reset).
_gateway: tuple[ChatSettings, LlmGateway] | None = None


def _settings() -> ChatSettings:
    return get_runtime().chat_settings


def _llm() -> LlmGateway:
    global _gateway  # noqa: PLW0603 - one client per execution environment, like the connection
    settings = _settings()
    if _gateway is None or _gateway[0] is not settings:
        _gateway = (settings, LlmGateway.from_settings(settings))
    return _gateway[1]


def _uow() -> ChatUnitOfWork:
    scope = current_scope(app)
    return ChatUnitOfWork(
        scope,
        scope.caller.tenant_id,
        default_monthly_tokens=_settings().chat_default_monthly_tokens,
    )


def _user() -> UUID:
    return current_scope(app).caller.user_id


def _exchange(outcome: service.MessageOutcome) -> MessageExchange:
    verdict = outcome.verdict
    return MessageExchange(
        question=MessageResponse.of(outcome.question),
        verdict=VerdictResponse(
            outcome=verdict.outcome,
            reason=verdict.reason,
            approval_request_id=verdict.approval_request_id,
            evaluation_id=verdict.evaluation_id,
        ),
        answer=MessageResponse.of(outcome.answer) if outcome.answer else None,
    )


_MESSAGE_ERRORS = (
    SessionNotFound,
    SessionClosed,
    ActionBlocked,
    ApprovalWithdrawn,
    TokenQuotaExceeded,
    LlmProviderError,
    LlmUnavailable,
)


@app.post(
    "/api/chat/sessions",
    status_code=201,
    summary="Open a chat session",
    responses=error_responses(success=201),
)
def create_session(request: CreateSessionRequest) -> SessionResponse:
    return conversations.create_session(_uow, user_id=_user(), title=request.title)


@app.get(
    "/api/chat/sessions",
    summary="The caller's chat sessions, newest first",
    responses=error_responses(InvalidCursor),
)
def list_sessions(
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SessionPage:
    return conversations.list_sessions(_uow, user_id=_user(), cursor=cursor, limit=limit)


@app.get(
    "/api/chat/sessions/<session_id>",
    summary="A chat session with its messages; answers carry their citations",
    responses=error_responses(SessionNotFound),
)
def get_session(session_id: Annotated[UUID, Path()]) -> HistoryResponse:
    return conversations.get_session(_uow, session_id, user_id=_user())


@app.get(
    "/api/chat/sessions/<session_id>/messages",
    summary="A chat session's history: messages in order, answers with their citations",
    responses=error_responses(SessionNotFound),
)
def get_history(session_id: Annotated[UUID, Path()]) -> HistoryResponse:
    return conversations.get_session(_uow, session_id, user_id=_user())


@app.post(
    "/api/chat/sessions/<session_id>/close",
    summary="Close a chat session (it takes no more messages)",
    responses=error_responses(SessionNotFound),
)
def close_session(session_id: Annotated[UUID, Path()]) -> SessionResponse:
    return conversations.close_session(_uow, session_id, user_id=_user())


@app.post(
    "/api/chat/sessions/<session_id>/messages",
    status_code=201,
    summary="Ask the assistant: the tenant's policies, then its token quota, then the model",
    description=(
        "201 with the question and the gate's verdict: `allow` with the answer and its "
        "citations, or `pending` (no answer) when the tenant's policies require a human "
        "approval (resume the question once approved); 403 `policy_blocked` when they block "
        "it (the provider never sees it); 429 `token_quota_exceeded`; 502/503 when the model "
        "provider fails."
    ),
    responses=error_responses(*_MESSAGE_ERRORS, success=201),
)
def send_message(
    session_id: Annotated[UUID, Path()], request: SendMessageRequest
) -> MessageExchange:
    scope = current_scope(app)
    gateway = _llm()
    outcome = service.send_message(
        _uow,
        retriever=QuestionEmbedder(gateway),
        llm=gateway,
        session_id=session_id,
        tenant_id=scope.caller.tenant_id,
        user_id=scope.caller.user_id,
        content=request.content,
        model=gateway.chat_model,
    )
    return _exchange(outcome)


@app.post(
    "/api/chat/sessions/<session_id>/messages/<message_id>/resume",
    summary="Answer a question that waited for approval, once it is approved",
    description=(
        "The verdict says where the question stands: `allow` with the answer, still "
        "`pending`, or 403 `policy_blocked` when the approval was rejected."
    ),
    responses=error_responses(
        service.MessageNotFound, service.MessageNotPending, *_MESSAGE_ERRORS[2:]
    ),
)
def resume_message(
    session_id: Annotated[UUID, Path()], message_id: Annotated[UUID, Path()]
) -> MessageExchange:
    scope = current_scope(app)
    gateway = _llm()
    outcome = service.resume_message(
        _uow,
        retriever=QuestionEmbedder(gateway),
        llm=gateway,
        session_id=session_id,
        message_id=message_id,
        tenant_id=scope.caller.tenant_id,
        user_id=scope.caller.user_id,
        model=gateway.chat_model,
    )
    return _exchange(outcome)


@app.post(
    "/api/chat/sessions/<session_id>/messages/<message_id>/feedback",
    summary="Rate an answer (1-5) with an optional comment; a new rating replaces the old",
    responses=error_responses(conversations.AnswerNotFound),
)
def give_feedback(
    session_id: Annotated[UUID, Path()],
    message_id: Annotated[UUID, Path()],
    request: FeedbackRequest,
) -> FeedbackResponse:
    return conversations.give_feedback(
        _uow,
        session_id,
        message_id,
        user_id=_user(),
        rating=request.rating,
        comment=request.comment,
    )


@app.get(
    "/api/chat/usage",
    summary="Token usage per day, user and model, and the month's quota",
    responses=error_responses(conversations.InvalidUsageRange),
)
def get_usage(
    since: Annotated[date | None, Query(description="first day (UTC), inclusive")] = None,
    until: Annotated[date | None, Query(description="last day (UTC), exclusive")] = None,
) -> UsageResponse:
    return conversations.usage(_uow, since=since, until=until, today=datetime.now(UTC).date())


def _upload_target() -> S3Uploads | None:
    bucket = _settings().documents_bucket
    return S3Uploads(boto3.client("s3"), bucket) if bucket else None


@app.post(
    "/api/chat/documents",
    status_code=201,
    summary="Get a presigned upload for a document of the tenant's knowledge base",
    description=(
        "POST the returned fields and then the file (form field `file`) to `upload.url`; "
        "ingestion starts when the object arrives. Poll `GET /api/chat/documents/{id}`."
    ),
    responses=error_responses(UnsupportedDocument, documents.UploadsNotConfigured, success=201),
)
def create_document(request: CreateDocumentRequest) -> DocumentUploadResponse:
    return documents.request_upload(
        _uow,
        _upload_target(),
        tenant_id=current_scope(app).caller.tenant_id,
        title=request.title,
        filename=request.filename,
    )


@app.get(
    "/api/chat/documents",
    summary="The tenant's documents and the global ones, newest first",
    responses=error_responses(InvalidCursor),
)
def list_documents(
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    include_global: Annotated[bool, Query()] = True,
) -> DocumentPage:
    return documents.list_documents(_uow, cursor=cursor, limit=limit, include_global=include_global)


@app.get(
    "/api/chat/documents/<document_id>",
    summary="A document and its ingestion status",
    responses=error_responses(documents.DocumentNotFound),
)
def get_document(document_id: Annotated[UUID, Path()]) -> DocumentResponse:
    return documents.get_document(_uow, document_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
