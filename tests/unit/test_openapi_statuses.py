"""Every route documents exactly the error statuses its code can raise.

"Can raise" is read from the code itself: starting at the route's function, every call that
resolves (by name, through module globals) to a function of ``lambdas`` is followed, and every
``raise X(...)`` of an ``AppError`` subclass (or of a call to a function annotated to return
one) is collected; a method called on a constructed service (or on a local name bound to one)
is followed too. Calls on objects behind ports (repository methods) are not followed:
their errors reach the client only as the shared layer's mapping (409/503), which is documented
for every route. Statuses the shared entry point adds for every route (auth, body, validation,
idempotency, database) are checked separately against ``lambdas.shared.http`` and the
resolver's error handlers.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

import pytest

from lambdas.shared import errors, http, idempotency
from lambdas.shared.errors import AppError
from lambdas.shared.routes import GROUPS, ROUTES, Route
from scripts.devstack.openapi import build_openapi, platform_statuses

# One build of the spec for the whole module: it imports every handler and renders every schema
# (seconds under coverage), and the tests only read it.
_spec = functools.cache(build_openapi)

# The webhook providers import their SDK-backed modules inside the function (the Stripe SDK is
# heavy); importing them here makes them attributes of their package, so the analysis follows
# those calls whatever order the tests run in.
importlib.import_module("lambdas.billing.providers.stripe_webhooks")
importlib.import_module("lambdas.billing.providers.mercadopago_webhooks")


def _return_hint(func: Any) -> Any:
    """``func``'s return annotation, or None when it names what exists only for type checkers
    (a ``TYPE_CHECKING`` import) or nothing at all."""
    try:
        return typing.get_type_hints(func).get("return")
    except NameError:
        return None


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return scope.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, scope)
        return getattr(owner, node.attr, None) if owner is not None else None
    if isinstance(node, ast.Call):
        # ``deps.leads().create(...)``: a call annotated to return a class stands for that
        # class, so the method called on its result is followed
        callee = _resolve(node.func, scope)
        if inspect.isclass(callee):
            # ``FormService(uow).get(...)``: a constructed object stands for its class
            return callee
        if inspect.isfunction(callee) or inspect.ismethod(callee):
            returned = _return_hint(callee)
            return returned if inspect.isclass(returned) else None
    return None


def _with_locals(tree: ast.AST, scope: dict[str, Any]) -> dict[str, Any]:
    """``service = SubmissionService(...)`` then ``service.submit(...)``: a local name bound once
    to a call stands for what that call stands for."""
    local = dict(scope)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and (resolved := _resolve(node.value, scope)) is not None
        ):
            local[node.targets[0].id] = resolved
    return local


def _error_class(obj: Any) -> type[AppError] | None:
    if inspect.isclass(obj) and issubclass(obj, AppError):
        return obj
    if inspect.isfunction(obj):
        returned = _return_hint(obj)
        candidates = typing.get_args(returned) or (returned,)
        found = [c for c in candidates if inspect.isclass(c) and issubclass(c, AppError)]
        return found[0] if found else None
    return None


def raised_errors(func: Callable[..., Any], seen: set[Any] | None = None) -> set[type[AppError]]:
    """The AppError classes ``func`` and the lambdas functions it calls can raise."""
    seen = set() if seen is None else seen
    func = inspect.unwrap(func)
    if func in seen:
        return set()
    seen.add(func)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    scope = _with_locals(tree, func.__globals__)
    owner = func.__qualname__.split(".")[0]
    if "." in func.__qualname__ and inspect.isclass(func.__globals__.get(owner)):
        scope["self"] = func.__globals__[owner]  # a method's ``self.other(...)`` is followed
    found: set[type[AppError]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if (error := _error_class(_resolve(target, scope))) is not None:
                found.add(error)
        elif isinstance(node, ast.Call):
            callee = _resolve(node.func, scope)
            if inspect.ismethod(callee):
                callee = callee.__func__
            if inspect.isfunction(callee) and callee.__module__.startswith("lambdas."):
                found |= raised_errors(callee, seen)
    return found


def _route_function(route: Route) -> Callable[..., Any]:
    app = importlib.import_module(f"lambdas.{route.group}.handler").app
    for registered in app._static_routes + app._dynamic_routes:
        if registered.method == route.method and registered.openapi_path == route.path:
            return typing.cast("Callable[..., Any]", registered.func)
    raise LookupError(route.route_key)


API_ROUTES = [route for route in ROUTES if route.group in GROUPS]


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.route_key)
def test_a_route_documents_every_error_its_code_raises_and_no_other(route: Route) -> None:
    spec = _spec()
    operation = spec["paths"][route.path][route.method.lower()]
    documented = {int(s) for s in operation["responses"] if int(s) >= 400}

    raised = {int(error.status) for error in raised_errors(_route_function(route))}
    platform = {int(s) for s in platform_statuses(route, operation)}

    assert raised <= documented, f"raised but not documented: {sorted(raised - documented)}"
    assert documented <= raised | platform, (
        f"documented but nothing raises it: {sorted(documented - raised - platform)}"
    )


def test_the_shared_entry_points_statuses_are_the_platform_statuses() -> None:
    # What resolve(), authorization and idempotency raise before or around any route ...
    entry = set()
    for func in (http.resolve, http.current_principal):
        entry |= {int(e.status) for e in raised_errors(func)}
    entry |= {int(e.status) for e in raised_errors(idempotency.resolve_idempotently)}
    # ... and what the resolver's handlers turn validation, media type and database errors into
    handlers = {int(e.status) for e in raised_errors(errors.register_error_handlers)}
    source = inspect.getsource(errors.register_error_handlers)
    mapped = {
        int(getattr(errors, name).status)
        for name in dir(errors)
        if inspect.isclass(getattr(errors, name))
        and issubclass(getattr(errors, name), AppError)
        and f"{name}(" in source
    }

    union: set[int] = set()
    for route in API_ROUTES:
        operation = _spec()["paths"][route.path][route.method.lower()]
        union |= {int(s) for s in platform_statuses(route, operation)}

    # every status the shared layer can answer is documented as a platform status, but 500
    # (never promised) and 404 for a path no route serves (no operation to document it on)
    assert (entry | handlers | mapped) - {500, 404} <= union


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.route_key)
def test_a_route_documents_the_one_success_status_it_answers(route: Route) -> None:
    app = importlib.import_module(f"lambdas.{route.group}.handler").app
    registered = next(
        r
        for r in app._static_routes + app._dynamic_routes
        if r.method == route.method and r.openapi_path == route.path
    )
    responses = _spec()["paths"][route.path][route.method.lower()]["responses"]

    assert [s for s in responses if s < "400"] == [str(registered.status_code)]
    assert responses[str(registered.status_code)]["content"]["application/json"]["schema"]
