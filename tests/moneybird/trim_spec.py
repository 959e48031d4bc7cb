"""Moneybird's spec as openapi-core can read it: the contract tests' copy.

The repository keeps Moneybird's official spec (``spec/moneybird/openapi.json``, what
``scripts/generate-moneybird`` reads); openapi-core 0.23 cannot load it as published,
so :func:`trim` makes an in-memory copy without examples and prose, with the few
fixes :func:`fix` lists, changing no rule a request must follow. Nothing is written
to disk: the copy the tests validate against is always the current spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parents[2] / "spec" / "moneybird" / "openapi.json"

PROSE = {"examples", "example"}


def strip(node: Any, *, in_properties: bool = False) -> Any:
    """Drop examples, but never a schema property that happens to be named so."""
    if isinstance(node, dict):
        return {
            key: strip(value, in_properties=key == "properties" and not in_properties)
            for key, value in node.items()
            if in_properties or key not in PROSE
        }
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def fix(node: Any, schemas: dict[str, Any]) -> Any:
    """Make Moneybird's spec (v2-20260821) readable by openapi-core 0.23, changing no rule
    a request must follow:

    - contact ``is_trusted`` is a boolean whose ``default`` is the string "default"
      (the spec validator rejects the whole document);
    - a parameter schema typed ``["integer", "string"]`` (e.g. ``per_page``) is read as
      ``string``, which is what a query string carries: openapi-core reads parameter
      types as one string. Its ``pattern`` still applies. Such schemas behind a
      ``$ref`` (``identifier``) are inlined first;
    - the same for a field of a multipart form (``sepa_credit_transfer``'s
      ``ledger_account_id``): a form field is a string, and openapi-core reads its type
      as one string;
    - ``{id}{format}``: openapi-core cannot split two adjacent path parameters (``id``
      swallows ``.json``), so ``{format}`` becomes the literal ``.json`` hookbird always
      sends (stricter than the spec, which also allows ``.xml`` and nothing). See
      :func:`literal_format`.
    """
    if isinstance(node, dict):
        if node.get("type") == "boolean" and node.get("default") == "default":
            node = {k: v for k, v in node.items() if k != "default"}
        if node.get("in") in ("query", "path") and isinstance(node.get("schema"), dict):
            node = {**node, "schema": as_string(node["schema"], schemas)}
        form = node.get("multipart/form-data", {}).get("schema", {})
        if isinstance(form.get("properties"), dict):
            fields = {name: as_string(field, schemas) for name, field in form["properties"].items()}
            form = {**form, "properties": fields}
            node = {**node, "multipart/form-data": {**node["multipart/form-data"], "schema": form}}
        return {k: fix(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [fix(item, schemas) for item in node]
    return node


def as_string(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A schema typed ``["integer", "string"]`` (maybe behind a ``$ref``) read as ``string``."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = strip(schemas[ref.rsplit("/", 1)[1]])
    if isinstance(schema.get("type"), list) and "string" in schema["type"]:
        schema = {**schema, "type": "string"}
        if "default" in schema and not isinstance(schema["default"], str):
            schema["default"] = json.dumps(schema["default"])
    return schema


def literal_format(path: str, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``/{administration_id}/contacts{format}`` → ``…/contacts.json``, without the parameter."""

    def keep(param: Any) -> bool:
        return not (
            param.get("$ref") == "#/components/parameters/format" or param.get("name") == "format"
        )

    fixed = {
        method: {**op, "parameters": [p for p in op.get("parameters", []) if keep(p)]}
        if isinstance(op, dict)
        else op
        for method, op in item.items()
    }
    return path.replace("{format}", ".json"), fixed


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    paths = dict(literal_format(p, fix(strip(item), schemas)) for p, item in spec["paths"].items())
    components: dict[str, dict[str, Any]] = {}
    todo = refs(paths)
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = fix(strip(spec["components"][kind][name]), schemas)
        components.setdefault(kind, {})[name] = node
        todo |= refs(node)
    components["securitySchemes"] = spec["components"]["securitySchemes"]
    components.get("parameters", {}).pop("format", None)
    return {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "description": "Read by tests/moneybird/trim_spec.py"},
        "servers": spec["servers"],
        "security": spec["security"],
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }


def load_fixed(source: Path = SPEC) -> dict[str, Any]:
    """The spec at ``source``, readable by openapi-core."""
    return trim(json.loads(source.read_text(encoding="utf-8")))
