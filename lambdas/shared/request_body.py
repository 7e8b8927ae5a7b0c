"""What a request body must be, checked once for every route (and every webhook's raw body).

- Only ``application/json``: the media type is checked before Powertools parses anything, so no
  form or multipart parser ever sees a body (415 otherwise, naming the type to send).
- Valid JSON with no duplicate object keys (400: "last one wins" hides what the client meant).
- Nesting at most ``MAX_JSON_DEPTH`` deep (400), so no later ``json.dumps`` or validator recurses
  without bound.
- No NUL character in any string or key (422 naming the JSON path): PostgreSQL's ``text`` and
  ``jsonb`` cannot store it, and it is never meaningful in this API.
"""

from __future__ import annotations

import json
from typing import Any, Final

from lambdas.shared.errors import BadRequest, UnsupportedMediaType, ValidationFailed

JSON_MEDIA_TYPE: Final = "application/json"
MAX_JSON_DEPTH: Final = 64
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_TOO_DEEP: Final = f"request body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"


class DuplicateJsonKey(BadRequest):
    code = "duplicate_json_key"


class JsonTooDeep(BadRequest):
    pass


class InvalidJson(BadRequest):
    pass


class NulInString(ValidationFailed):
    pass


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def unsupported_media_type(event: dict[str, Any]) -> UnsupportedMediaType | None:
    """An error when the request carries a body (or, on a writing method, a content type) that
    is not ``application/json``; None when the request may go on. Media types are
    case-insensitive: an accepted one is written back in lower case, as the resolver expects."""
    headers = event.get("headers") or {}
    content_type = headers.get("content-type")
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "")
    has_body = bool(event.get("body"))
    if not has_body and (content_type is None or method in _SAFE_METHODS):
        return None
    if _media_type(content_type) == JSON_MEDIA_TYPE:
        headers["content-type"] = JSON_MEDIA_TYPE
        return None
    sent = _media_type(content_type) or "no Content-Type"
    return UnsupportedMediaType(
        f"send the request body as JSON with Content-Type: {JSON_MEDIA_TYPE} (got {sent})"
    )


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateJsonKey(f"the JSON object repeats the key {key!r}")
        result[key] = value
    return result


def _location(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _check_tree(value: Any, root: str) -> None:
    """Depth and NUL checks without recursion (the tree may be as deep as the parser allowed)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict | list) and len(path) >= MAX_JSON_DEPTH:
            raise JsonTooDeep(_TOO_DEEP)
        if isinstance(node, str):
            if "\x00" in node:
                _refuse_nul(root, path)
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    _refuse_nul(root, path)
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(node))


def _refuse_nul(root: str, path: tuple[str | int, ...]) -> None:
    where = root + _location(path)
    raise NulInString(
        f"{where} contains a NUL character (\\u0000), which is not allowed",
        details=[
            {"loc": [root, *map(str, path)], "msg": "NUL character not allowed", "type": "nul"}
        ],
    )


def parse_json(body: str | bytes, *, root: str = "body") -> Any:
    """Parse a request body under this module's rules; raises the AppError to answer with."""
    try:
        value = json.loads(body, object_pairs_hook=_pairs_without_duplicates)
    except RecursionError:
        raise JsonTooDeep(_TOO_DEEP) from None
    except UnicodeDecodeError:
        raise InvalidJson("request body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidJson(f"request body is not valid JSON: {error.msg}") from None
    _check_tree(value, root)
    return value
