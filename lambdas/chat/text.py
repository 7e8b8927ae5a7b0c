"""Text helpers shared by the pipeline, the gateway and the offline provider: a token estimate
and Portuguese-aware word normalisation (no model-specific tokenizer is shipped)."""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
# Common Portuguese inflection endings, longest first: "contratos", "contratual" -> "contrat".
_SUFFIXES = (
    "amentos", "imentos", "amento", "imento", "mente", "acoes", "icoes", "acao", "icao",
    "ais", "eis", "oes", "aes", "ao", "al", "as", "es", "os", "ar", "er", "ir", "a", "e", "o", "s",
)  # fmt: skip


def estimate_tokens(text: str) -> int:
    """Words and punctuation marks: close to BPE token counts for Portuguese prose."""
    return len(_TOKEN.findall(text))


def fold(text: str) -> str:
    """Lowercase without accents: "Ação" -> "acao"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stems(text: str) -> list[str]:
    """Folded words with common endings removed, keeping at least four letters."""
    found: list[str] = []
    for word in _WORD.findall(fold(text)):
        stem = word
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                stem = word[: -len(suffix)]
                break
        found.append(stem)
    return found
