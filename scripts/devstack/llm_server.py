"""An offline OpenAI-compatible server for development and tests.

``POST /v1/embeddings`` and ``POST /v1/chat/completions`` answer as the OpenAI API does, so the
real ``openai`` SDK reaches it through ``base_url``:

- embeddings are deterministic: a hashed bag of Portuguese-aware word stems in 1536 dimensions,
  L2-normalised, so texts sharing words land near each other;
- answers are deterministic: they quote the numbered context passages (``[1] ...``) found in
  the prompt, and report ``usage`` token counts like a provider.

Run it alone with ``python -m scripts.devstack.llm_server --port 8001``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import threading
import time
from array import array
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lambdas.chat.constants import EMBEDDING_DIMENSION
from lambdas.chat.text import estimate_tokens, stems

OFFLINE_API_KEY = "offline-dev-key"
_PASSAGE = re.compile(r"^\[(\d+)\]\s*(.+)$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def embed(text: str, dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """A hashed bag of stems: each stem adds ±1 at two hashed positions (a count sketch)."""
    vector = [0.0] * dimension
    words = stems(text) or [""]
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        for offset in (0, 4):
            index = int.from_bytes(digest[offset : offset + 3], "big") % dimension
            vector[index] += 1.0 if digest[offset + 3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def answer(messages: list[dict[str, Any]]) -> str:
    """Quote the first sentence of each numbered passage in the prompt, citing its number."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages)
    passages = _PASSAGE.findall(prompt)
    if not passages:
        return "Não encontrei essa informação nos documentos disponíveis."
    quotes = []
    for number, text in passages[:5]:
        first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
        quotes.append(f'[{number}] "{first}"')
    return "Segundo os documentos: " + "; ".join(quotes) + "."


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    """As OpenAI answers: floats, or with ``encoding_format=base64`` (what the SDK asks for
    unless told otherwise) little-endian float32s in base64."""
    if encoding != "base64":
        return vector
    return base64.b64encode(array("f", vector).tobytes()).decode()


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is None or estimate_tokens(text) <= max_tokens:
        return text, False
    words = text.split()
    while words and estimate_tokens(" ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words), True


@dataclass
class LlmServerStats:
    """What the server was asked, for tests that count provider calls."""

    embeddings: int = 0
    completions: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)

    @property
    def total(self) -> int:
        return self.embeddings + self.completions


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: with Nagle's algorithm on, the body waited for the
    # client's delayed ACK of the headers (~40 ms a request on loopback)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are not logged."""

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            models = [self.server.chat_model, self.server.embedding_model]
            self._send(
                HTTPStatus.OK,
                {"object": "list", "data": [{"id": m, "object": "model"} for m in models]},
            )
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError):
            self._error(HTTPStatus.BAD_REQUEST, "invalid JSON body")
            return
        if self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self._error(HTTPStatus.UNAUTHORIZED, "invalid API key", "invalid_api_key")
        elif self.path.endswith("/embeddings"):
            self._embeddings(body)
        elif self.path.endswith("/chat/completions"):
            self._completion(body)
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._error(HTTPStatus.BAD_REQUEST, "input must be a string or a list of strings")
            return
        self.server.stats.count("embeddings")
        encoding = body.get("encoding_format") or "float"
        tokens = sum(estimate_tokens(t) for t in texts)
        self._send(
            HTTPStatus.OK,
            {
                "object": "list",
                "model": body.get("model", self.server.embedding_model),
                "data": [
                    {"object": "embedding", "index": i, "embedding": _encoded(embed(t), encoding)}
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _completion(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(HTTPStatus.BAD_REQUEST, "messages must be a non-empty list")
            return
        self.server.stats.count("completions")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        text, cut = _truncate(answer(messages), max_tokens)
        prompt_tokens = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = estimate_tokens(text)
        self._send(
            HTTPStatus.OK,
            {
                "id": f"chatcmpl-offline-{hashlib.sha256(text.encode()).hexdigest()[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.server.chat_model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length" if cut else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _error(self, status: HTTPStatus, message: str, code: str | None = None) -> None:
        self._send(
            status,
            {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        )

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], *, api_key: str, chat_model: str, embedding_model: str
    ) -> None:
        super().__init__(address, _Handler)
        self.api_key = api_key
        self.chat_model = chat_model
        self.embedding_model = embedding_model
        self.stats = LlmServerStats()


@dataclass
class RunningLlmServer:
    """A server serving on a background thread; ``stop()`` shuts it down."""

    server: _Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def api_key(self) -> str:
        return self.server.api_key

    @property
    def stats(self) -> LlmServerStats:
        return self.server.stats

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_llm_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str = OFFLINE_API_KEY,
    chat_model: str = "offline-chat",
    embedding_model: str = "offline-embedding",
) -> RunningLlmServer:
    """Serve on ``host:port`` (0: a free port) in a daemon thread and return at once."""
    server = _Server(
        (host, port), api_key=api_key, chat_model=chat_model, embedding_model=embedding_model
    )
    thread = threading.Thread(target=server.serve_forever, name="llm-server", daemon=True)
    thread.start()
    return RunningLlmServer(server, thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=OFFLINE_API_KEY)
    args = parser.parse_args(argv)
    running = start_llm_server(args.host, args.port, api_key=args.api_key)
    print(f"offline LLM server on {running.base_url} (key {args.api_key})")
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.stop()


if __name__ == "__main__":
    main()
