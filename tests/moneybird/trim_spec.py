"""Regenerate ``openapi-trimmed.json``: the paths hookbird's client uses, from Moneybird's spec.

A fresh clone must run the contract tests without the 3 MB official spec, so the
repository keeps only these paths and the components they reference, without
examples and prose. Run it when the client starts using a new path::

    python -m tests.moneybird.trim_spec ../shared/moneybird/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TRIMMED = HERE / "openapi-trimmed.json"

RESOURCES = [
    "contacts",
    "sales_invoices",
    "estimates",
    "documents/purchase_invoices",
    "documents/receipts",
    "documents/typeless_documents",
    "time_entries",
    "products",
    "projects",
    "ledger_accounts",
    "tax_rates",
    "webhooks",
]
EXTRA = [
    "/administrations{format}",
    "/{administration_id}/reports/profit_loss{format}",
    "/{administration_id}/sales_invoices/find_by_invoice_id/{invoice_id}{format}",
]
ACTIONS = [
    "synchronization",
    "{id}",
    "{id}/send_invoice",
    "{id}/send_estimate",
    "{id}/register_payment",
    "{id}/download_pdf",
    "{id}/attachments",
    "{id}/stop",
    "{id}/activate",
    "{id}/deactivate",
]
PROSE = {"examples", "example"}


def wanted_paths(spec: dict[str, Any]) -> list[str]:
    paths = list(EXTRA)
    for resource in RESOURCES:
        paths.append(f"/{{administration_id}}/{resource}{{format}}")
        paths += [f"/{{administration_id}}/{resource}/{action}{{format}}" for action in ACTIONS]
    return [p for p in paths if p in spec["paths"]]


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
    - ``{id}{format}``: openapi-core cannot split two adjacent path parameters (``id``
      swallows ``.json``), so ``{format}`` becomes the literal ``.json`` hookbird always
      sends (stricter than the spec, which also allows ``.xml`` and nothing). See
      :func:`literal_format`.
    """
    if isinstance(node, dict):
        if node.get("type") == "boolean" and node.get("default") == "default":
            node = {k: v for k, v in node.items() if k != "default"}
        if node.get("in") in ("query", "path") and isinstance(node.get("schema"), dict):
            schema = node["schema"]
            ref = schema.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                schema = strip(schemas[ref.rsplit("/", 1)[1]])
            if isinstance(schema.get("type"), list) and "string" in schema["type"]:
                schema = {**schema, "type": "string"}
                if "default" in schema and not isinstance(schema["default"], str):
                    schema["default"] = json.dumps(schema["default"])
            node = {**node, "schema": schema}
        return {k: fix(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [fix(item, schemas) for item in node]
    return node


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
    paths = dict(
        literal_format(p, fix(strip(spec["paths"][p]), schemas)) for p in wanted_paths(spec)
    )
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
        "info": {**spec["info"], "description": "Trimmed by tests/moneybird/trim_spec.py"},
        "servers": spec["servers"],
        "security": spec["security"],
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/moneybird/openapi.json")
    trimmed = trim(json.loads(source.read_text(encoding="utf-8")))
    TRIMMED.write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{TRIMMED}: {len(trimmed['paths'])} paths, {TRIMMED.stat().st_size} bytes")


if __name__ == "__main__":
    main()
