"""The LLM gateway through the real openai SDK: against the offline provider, and against a
scripted server that fails, throttles or hangs."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lambdas.chat.errors import LlmProviderError, LlmUnavailable
from lambdas.chat.llm import LlmGateway
from lambdas.chat.models import ChatTurn
from lambdas.shared.settings import LlmSettings
from scripts.devstack.llm_server import RunningLlmServer, start_llm_server
from tests.support.chat import scripted_provider

EMBEDDING_OK: dict[str, Any] = {
    "object": "list",
    "model": "m",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0] * 1535 + [1.0]}],
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}
FAILURE: dict[str, Any] = {"error": {"message": "boom", "type": "server_error", "code": None}}


@pytest.fixture(scope="module")
def llm() -> Iterator[RunningLlmServer]:
    server = start_llm_server()
    yield server
    server.stop()


def _gateway(base_url: str, *, api_key: str = "k", timeout_s: float = 5, retries: int = 2):
    return LlmGateway(
        api_key=api_key,
        base_url=base_url,
        chat_model="offline-chat",
        embedding_model="offline-embedding",
        timeout_s=timeout_s,
        max_retries=retries,
    )


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_offline_embeddings_put_texts_sharing_words_close(llm) -> None:
    gateway = _gateway(llm.base_url, api_key=llm.api_key)
    contract, contracts, weather = gateway.embed(
        [
            "Rescisão do contrato de trabalho e aviso prévio",
            "contratos de trabalho: rescisões e avisos",
            "previsão do tempo para amanhã em Recife",
        ]
    )
    assert len(contract) == 1536
    assert math.isclose(math.sqrt(sum(v * v for v in contract)), 1.0, rel_tol=1e-6)
    assert _cosine(contract, contracts) > 0.5 > _cosine(contract, weather)
    # deterministic: the same text, the same vector
    assert gateway.embed(["Rescisão do contrato de trabalho e aviso prévio"])[0] == contract


def test_embeddings_are_requested_in_batches(llm) -> None:
    before = llm.stats.embeddings
    vectors = _gateway(llm.base_url, api_key=llm.api_key).embed(
        [f"texto {i}" for i in range(10)], batch_size=4
    )
    assert len(vectors) == 10
    assert llm.stats.embeddings - before == 3


def test_offline_answers_quote_the_passages_with_usage(llm) -> None:
    completion = _gateway(llm.base_url, api_key=llm.api_key).complete(
        [
            ChatTurn(
                "system", "Responda com base nos trechos.\n[1] O aviso prévio é de 30 dias. Mais."
            ),
            ChatTurn("user", "Qual o prazo do aviso prévio?"),
        ],
        max_tokens=200,
    )
    assert completion.text == 'Segundo os documentos: [1] "O aviso prévio é de 30 dias.".'
    assert completion.prompt_tokens > 10
    assert completion.completion_tokens > 5
    assert completion.model == "offline-chat"


def test_a_wrong_key_is_a_provider_error(llm) -> None:
    with pytest.raises(LlmProviderError) as failed:
        _gateway(llm.base_url, api_key="wrong").embed(["x"])
    assert failed.value.status == 502


def test_5xx_is_retried_with_backoff_and_then_succeeds() -> None:
    script: list[tuple[int, dict[str, Any], float]] = [
        (500, FAILURE, 0.0),
        (502, FAILURE, 0.0),
        (200, EMBEDDING_OK, 0.0),
    ]
    with scripted_provider(script) as (url, provider):
        vectors = _gateway(url, retries=2).embed(["x"])
    assert provider.requests == 3
    assert vectors[0][-1] == 1.0


def test_persistent_5xx_is_a_502_after_bounded_retries() -> None:
    with (
        scripted_provider([(503, FAILURE, 0.0)]) as (url, provider),
        pytest.raises(LlmProviderError) as failed,
    ):
        _gateway(url, retries=2).embed(["x"])
    assert provider.requests == 3
    assert (failed.value.status, failed.value.code) == (502, "llm_provider_error")


def test_persistent_429_is_a_503() -> None:
    with (
        scripted_provider([(429, FAILURE, 0.0)]) as (url, provider),
        pytest.raises(LlmUnavailable) as failed,
    ):
        _gateway(url, retries=1).complete([ChatTurn("user", "oi")], max_tokens=5)
    assert provider.requests == 2
    assert (failed.value.status, failed.value.code) == (503, "llm_unavailable")


def test_a_hanging_provider_times_out_as_a_503() -> None:
    with scripted_provider([(200, EMBEDDING_OK, 3.0)]) as (url, provider):
        started = time.monotonic()
        with pytest.raises(LlmUnavailable):
            _gateway(url, timeout_s=0.3, retries=1).embed(["x"])
        elapsed = time.monotonic() - started
    assert provider.requests == 2
    assert elapsed < 2.9  # two 0.3 s attempts and one short backoff, never the 3 s answer


def test_an_unreachable_provider_is_a_503() -> None:
    with scripted_provider([(200, EMBEDDING_OK, 0.0)]) as (url, _):
        pass  # the port is closed again
    with pytest.raises(LlmUnavailable):
        _gateway(url, timeout_s=1, retries=0).embed(["x"])


def test_embeddings_of_another_size_are_refused() -> None:
    wrong = {**EMBEDDING_OK, "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}]}
    with (
        scripted_provider([(200, wrong, 0.0)]) as (url, _),
        pytest.raises(LlmProviderError, match="another size"),
    ):
        _gateway(url).embed(["x"])


def test_an_answer_without_token_usage_is_a_provider_error() -> None:
    answer = {
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "oi"}}],
    }
    with (
        scripted_provider([(200, answer, 0.0)]) as (url, _),
        pytest.raises(LlmProviderError, match="token usage") as failed,
    ):
        _gateway(url).complete([ChatTurn("user", "oi")], max_tokens=5)
    assert failed.value.status == 502


def test_an_answer_without_choices_is_a_provider_error() -> None:
    answer = {"object": "chat.completion", "model": "m", "choices": [], "usage": {}}
    with (
        scripted_provider([(200, answer, 0.0)]) as (url, _),
        pytest.raises(LlmProviderError, match="no answer"),
    ):
        _gateway(url).complete([ChatTurn("user", "oi")], max_tokens=5)


def test_an_embedding_neither_base64_nor_numbers_is_a_provider_error() -> None:
    wrong = {**EMBEDDING_OK, "data": [{"object": "embedding", "index": 0, "embedding": {"a": 1}}]}
    with (
        scripted_provider([(200, wrong, 0.0)]) as (url, _),
        pytest.raises(LlmProviderError, match="unusable embeddings"),
    ):
        _gateway(url).embed(["x"])


def test_the_offline_answer_reports_the_model_and_the_tokens_it_used(llm) -> None:
    completion = _gateway(llm.base_url, api_key=llm.api_key).complete(
        [ChatTurn("system", "Trechos:\n[1] O prazo é de trinta dias."), ChatTurn("user", "prazo?")],
        max_tokens=50,
    )
    assert completion.model == "offline-chat"
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens > 0
    assert "[1]" in completion.text


def test_the_gateway_is_built_from_settings_with_the_key_from_secrets_manager(
    aws, llm, monkeypatch
) -> None:
    arn = boto3.client("secretsmanager").create_secret(
        Name="/alquimista/dev/llm/api-key", SecretString=f'{{"api_key": "{llm.api_key}"}}'
    )["ARN"]
    monkeypatch.setenv("LLM_SECRET_ARN", arn)
    monkeypatch.setenv("LLM_BASE_URL", llm.base_url)
    gateway = LlmGateway.from_settings(LlmSettings())
    assert len(gateway.embed(["ok"])[0]) == 1536


def test_settings_without_any_key_are_refused() -> None:
    with pytest.raises(ValueError, match="no LLM key"):
        LlmGateway.from_settings(LlmSettings())
