"""The LLM gateway: the only module that talks to a model, through the official ``openai`` SDK.

Any OpenAI-compatible provider works through ``base_url`` (the offline dev server included).
Each request has a timeout; 429s, 5xx and connection failures are retried a bounded number of
times with the SDK's exponential backoff (honouring ``Retry-After``). What still fails becomes a
domain error: ``LlmUnavailable`` (503: unreachable, timed out, rate limited) or
``LlmProviderError`` (502: the provider answered with an error or an unusable response).

Requests go through the client's ``post`` (the SDK's documented way to send a request it does
not model), answered with the raw response, whose JSON this module reads itself: the SDK's
typed ``create`` methods walked the request's type annotations to transform it and built
pydantic models of the response, about 1.5 ms of CPU per message (2026-12-02, calibration
~165 ms) for the few fields read here. Retries, backoff, timeouts, authentication and the
SDK's errors are the same: they live in the request path ``post`` shares with ``create``.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lambdas.chat.constants import EMBEDDING_BATCH_SIZE, EMBEDDING_DIMENSION
from lambdas.chat.errors import LlmProviderError, LlmUnavailable
from lambdas.chat.models import ChatTurn, Completion
from lambdas.shared.observability import logger
from lambdas.shared.secrets import get_json_secret
from lambdas.shared.settings import LlmSettings


class LlmGateway:
    """Embeddings and chat completions from one provider."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        chat_model: str,
        embedding_model: str,
        timeout_s: float,
        max_retries: int,
    ) -> None:
        self.chat_model = chat_model
        self.embedding_model = embedding_model
        # the SDK loads with the first gateway (a message or a document to embed), not with the
        # handler: the chat routes that never reach a model do not pay for it
        from openai import OpenAI, Timeout  # noqa: PLC0415

        self._client = OpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            max_retries=max_retries,
        )

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> LlmGateway:
        """A gateway whose key comes from Secrets Manager (cached), else from the settings."""
        if settings.llm_secret_id:
            secret = get_json_secret(settings.llm_secret_id, max_age=settings.llm_secret_max_age_s)
            api_key = str(secret["api_key"])
        elif settings.llm_api_key:
            api_key = settings.llm_api_key
        else:
            raise ValueError(
                "no LLM key: set LLM_SECRET_ARN (or LLM_API_KEY for the offline server)"
            )
        return cls(
            api_key=api_key,
            base_url=settings.llm_base_url,
            chat_model=settings.llm_chat_model,
            embedding_model=settings.llm_embedding_model,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )

    def embed(
        self, texts: Sequence[str], *, batch_size: int = EMBEDDING_BATCH_SIZE
    ) -> list[list[float]]:
        """One vector per text, requested ``batch_size`` texts at a time."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            # little-endian float32s in base64, as the SDK's own create asks for them
            body = {"model": self.embedding_model, "input": batch, "encoding_format": "base64"}
            data = self._post("/embeddings", body, "embeddings")
            try:
                ordered = sorted(data["data"], key=lambda item: int(item["index"]))
                batch_vectors = [_vector(item["embedding"]) for item in ordered]
            except (KeyError, TypeError, ValueError) as error:
                raise LlmProviderError("the provider returned unusable embeddings") from error
            if len(batch_vectors) != len(batch):
                raise LlmProviderError("the provider returned the wrong number of embeddings")
            for vector in batch_vectors:
                if len(vector) != EMBEDDING_DIMENSION:
                    raise LlmProviderError("the provider returned embeddings of another size")
                vectors.append(vector)
        return vectors

    def complete(self, turns: Sequence[ChatTurn], *, max_tokens: int) -> Completion:
        """The model's answer to ``turns``, with the tokens the provider counted."""
        body = {
            "model": self.chat_model,
            "messages": [{"role": t.role, "content": t.content} for t in turns],
            "max_tokens": max_tokens,
        }
        data = self._post("/chat/completions", body, "chat")
        try:
            choices = data.get("choices") or []
            text = choices[0]["message"]["content"] if choices else None
            usage = data.get("usage")
            if text is None:
                raise LlmProviderError("the provider returned no answer")
            if not isinstance(usage, dict):
                raise LlmProviderError("the provider did not report token usage")
            return Completion(
                text=str(text),
                model=str(data.get("model") or ""),
                prompt_tokens=int(usage["prompt_tokens"]),
                completion_tokens=int(usage["completion_tokens"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LlmProviderError("the provider returned an unusable answer") from error

    def _post(self, path: str, body: dict[str, Any], operation: str) -> dict[str, Any]:
        """POST ``body`` through the SDK (its retries, timeouts and errors) and read the JSON
        object it answered."""
        import httpx2  # noqa: PLC0415  (the SDK's HTTP client, loaded with it)

        with _provider_errors(operation):
            response = self._client.post(path, cast_to=httpx2.Response, body=body)
        try:
            data = json.loads(response.content)
        except ValueError as error:
            raise LlmProviderError("the provider's response is not JSON") from error
        if not isinstance(data, dict):
            raise LlmProviderError("the provider's response is not a JSON object")
        return data

    def close(self) -> None:
        self._client.close()


def _vector(embedding: Any) -> list[float]:
    """An embedding as base64 little-endian float32s (what was asked for), or as a list of
    numbers (a provider that ignores ``encoding_format``)."""
    if isinstance(embedding, str):
        values = array("f", base64.b64decode(embedding, validate=True))
        if sys.byteorder == "big":
            values.byteswap()
        return values.tolist()
    if isinstance(embedding, list):
        return [float(v) for v in embedding]
    raise TypeError("an embedding is a base64 string or a list of numbers")


@contextmanager
def _provider_errors(operation: str) -> Iterator[None]:
    """Map what the SDK raises after its retries to the client-facing domain errors."""
    import openai  # noqa: PLC0415

    try:
        yield
    except (openai.APIConnectionError, openai.RateLimitError) as error:  # timeouts included
        logger.warning(
            "LLM provider unavailable",
            extra={"operation": operation, "error": type(error).__name__},
        )
        raise LlmUnavailable("the language model is unavailable; retry shortly") from error
    except openai.APIStatusError as error:
        logger.error(
            "LLM provider error", extra={"operation": operation, "status": error.status_code}
        )
        raise LlmProviderError("the language model provider failed") from error
    except openai.APIError as error:
        logger.error("LLM provider response unusable", extra={"operation": operation})
        raise LlmProviderError("the language model provider failed") from error
