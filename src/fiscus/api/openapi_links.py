"""OpenAPI `links` on the native create operations, stated in the document rather than guessed by a
client: the `id` of a created object feeds every operation whose path names that object
(`POST /customers` → `{customer_id}`), and a created object's other non-null `<thing>_id` fields feed
the operations on that thing. A nullable field never makes a link (a link resolved from `null` would
put `None` into a path: schemathesis inferred one from a payment's `payment_method_id`), so
tests/api/schemathesis.toml follows these links only."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Final

from fastapi import FastAPI

NATIVE: Final = "/api/v1/"
_PATH_ID: Final = re.compile(r"\{([a-z_]+)_id\}")


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _targets(doc: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """`thing` → the (operationId, parameter) of every native operation whose path names a `thing_id`."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, operations in doc.get("paths", {}).items():
        if not path.startswith(NATIVE):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            for thing in _PATH_ID.findall(path):
                found[thing].append((operation["operationId"], f"{thing}_id"))
    return found


def _sources(body: dict[str, Any]) -> dict[str, str]:
    """`thing` → the JSON pointer of a non-null integer id of that thing in a response body."""
    props: dict[str, Any] = body.get("properties", {})
    required = set(body.get("required", []))
    sources: dict[str, str] = {}
    kind = props.get("object", {})
    thing = kind.get("const") or kind.get("default")
    if isinstance(thing, str) and props.get("id", {}).get("type") == "integer" and "id" in required:
        sources[thing] = "$response.body#/id"
    for name, prop in props.items():
        if name.endswith("_id") and name in required and prop.get("type") == "integer":
            sources.setdefault(name[: -len("_id")], f"$response.body#/{name}")
    return sources


def _named(targets: dict[str, list[tuple[str, str]]], thing: str) -> list[tuple[str, str]]:
    """The operations naming `thing` in their path, by its whole name or by its last words (a
    `webhook_endpoint` is the `{endpoint_id}` of its paths, a `billable_metric` the `{metric_id}`)."""
    return [
        t for name, found in targets.items() if name == thing or thing.endswith(f"_{name}") for t in found
    ]


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with explicit links from each native POST's success response (idempotent)."""
    targets = _targets(doc)
    for path, operations in doc.get("paths", {}).items():
        post = operations.get("post")
        if not path.startswith(NATIVE) or not isinstance(post, dict):
            continue
        for status, response in post.get("responses", {}).items():
            if not str(status).startswith("2"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if not isinstance(schema, dict):
                continue
            links: dict[str, Any] = {}
            for thing, pointer in _sources(_resolve(schema, doc)).items():
                for operation_id, parameter in _named(targets, thing):
                    links[f"{thing}_to_{operation_id}"] = {
                        "operationId": operation_id,
                        "parameters": {f"path.{parameter}": pointer},
                    }
            if links:
                response["links"] = links
    return doc


def apply(app: FastAPI) -> None:
    """Add the links as the document is built (after the other document passes)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        app.openapi_schema = add_links(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
