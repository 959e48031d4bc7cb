"""Contract: every request the client builds is valid against Moneybird's own OpenAPI spec.

The spec is the repository's copy of Moneybird's official one, made readable for
openapi-core by ``trim_spec.py``; the validator is openapi-core's. Each client
operation runs against a transport that records the request and answers like
Moneybird would, then the recorded method, path, query and body are validated
against the spec: every one of the spec's operations through its generated method
(arguments built from the spec's own schemas), and the hand-written names and
scenarios below.
"""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from hookbird.moneybird import Administration, Client, operations
from tests.moneybird.trim_spec import SPEC, load_fixed

ADMIN = "123456789012345678"
ID = "496081407814141080"


class Recorded:
    """An httpx2 request as openapi-core's Request protocol sees it."""

    def __init__(self, request: httpx2.Request) -> None:
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return load()


def multipart_fields(body: bytes, boundary: str = "", **_: Any) -> dict[str, str]:
    """multipart/form-data → {name: content as text}: openapi-core's own parser yields bytes,
    which its OpenAPI 3.1 validator refuses for ``format: binary`` strings."""
    header = f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    fields = {}
    for part in message.iter_parts():
        payload = part.get_payload(decode=True) or b""
        assert isinstance(payload, bytes), "a multipart field holds a message, not content"
        fields[str(part.get_param("name", header="content-disposition"))] = payload.decode(
            "latin-1"
        )
    assert fields, "no multipart fields parsed"
    return fields


def load(*, check_spec: bool = False) -> OpenAPI:
    # Moneybird declares request bodies as application/*; they are JSON (or multipart).
    # Checking the spec itself takes seconds: test_the_spec_copy_is_valid_openapi does it once.
    deserializers: dict[str, Callable[[bytes], Any]] = {
        "application/*": json.loads,
        "multipart/form-data": multipart_fields,
    }
    if check_spec:
        config = Config(extra_media_type_deserializers=deserializers)
    else:
        config = Config(extra_media_type_deserializers=deserializers, spec_validator_cls=None)
    return OpenAPI.from_dict(load_fixed(), config=config)


def answer(request: httpx2.Request) -> httpx2.Response:
    if request.method == "DELETE" or request.url.path.endswith(("activate.json",)):
        return httpx2.Response(204)
    if request.url.path.endswith("download_pdf.json"):
        return httpx2.Response(200, content=b"%PDF")
    if request.url.path.endswith("synchronization.json") or request.url.path.endswith(
        ("s.json", "es.json", "ies.json")
    ):
        body: Any = [{"id": ID, "version": 1}] if request.method == "GET" else []
        return httpx2.Response(200, json=body)
    return httpx2.Response(200 if request.method != "POST" else 201, json={"id": ID})


Op = Callable[[Administration], Any]

OPERATIONS: dict[str, Op] = {
    "administrations": lambda a: a.client.administrations(),
    "request reports": lambda a: a.request("GET", "/reports/profit_loss"),
    "contacts.list": lambda a: list(a.contacts.list(query="vogel", include_archived="true")),
    "contacts.get": lambda a: a.contacts.get(ID),
    "contacts.create": lambda a: a.contacts.create(company_name="Vogel B.V.", city="Utrecht"),
    "contacts.update": lambda a: a.contacts.update(ID, firstname="Anne"),
    "contacts.delete": lambda a: a.contacts.delete(ID),
    "contacts.sync": lambda a: a.contacts.sync(),
    "contacts.fetch_many": lambda a: a.contacts.fetch_many([ID, "496081407814141081"]),
    "sales_invoices.list": lambda a: list(
        a.sales_invoices.list(
            filter={"state": ["open", "late"]}, period=("2020-01-01", "2026-12-31")
        )
    ),
    "sales_invoices.get": lambda a: a.sales_invoices.get(ID),
    "sales_invoices.create": lambda a: a.sales_invoices.create(
        contact_id=ID, details_attributes=[{"description": "Advies", "price": "100.0"}]
    ),
    "sales_invoices.update": lambda a: a.sales_invoices.update(ID, reference="PO-42"),
    "sales_invoices.delete": lambda a: a.sales_invoices.delete(ID),
    "sales_invoices.sync": lambda a: a.sales_invoices.sync(filter="state:open", period="this_year"),
    "sales_invoices.fetch_many": lambda a: a.sales_invoices.fetch_many([ID]),
    "sales_invoices.send": lambda a: a.sales_invoices.send(ID, delivery_method="Email"),
    "sales_invoices.payments.create": lambda a: a.sales_invoices.payments.create(
        ID, payment_date="2026-11-01", price="121.0"
    ),
    "sales_invoices.download_pdf": lambda a: a.sales_invoices.download_pdf(ID),
    "sales_invoices.find_by_invoice_id": lambda a: a.sales_invoices.find_by_invoice_id("2026-1"),
    "sales_invoices.add_attachment": lambda a: a.sales_invoices.add_attachment(
        ID, "order.pdf", b"%PDF-1.4 order"
    ),
    "estimates.list": lambda a: list(a.estimates.list(filter="period:prev_year,state:open")),
    "estimates.create": lambda a: a.estimates.create(contact_id=ID),
    "estimates.sync": lambda a: a.estimates.sync(period="this_year"),
    "estimates.fetch_many": lambda a: a.estimates.fetch_many([ID]),
    "estimates.send": lambda a: a.estimates.send(ID, delivery_method="Email"),
    "purchase_invoices.list": lambda a: list(a.purchase_invoices.list(period="this_year")),
    "purchase_invoices.get": lambda a: a.purchase_invoices.get(ID),
    "purchase_invoices.create": lambda a: a.purchase_invoices.create(
        contact_id=ID, reference="F-1", date="2026-11-01"
    ),
    "purchase_invoices.update": lambda a: a.purchase_invoices.update(ID, reference="F-2"),
    "purchase_invoices.sync": lambda a: a.purchase_invoices.sync(period="this_year"),
    "purchase_invoices.fetch_many": lambda a: a.purchase_invoices.fetch_many([ID]),
    "purchase_invoices.payments.create": lambda a: a.purchase_invoices.payments.create(
        ID, payment_date="2026-11-01", price="50.0"
    ),
    "receipts.list": lambda a: list(a.receipts.list(period=("2026-01", "2026-06"))),
    "receipts.create": lambda a: a.receipts.create(contact_id=ID, date="2026-11-01"),
    "receipts.sync": lambda a: a.receipts.sync(period="this_year"),
    "receipts.fetch_many": lambda a: a.receipts.fetch_many([ID]),
    "receipts.add_attachment": lambda a: a.receipts.add_attachment(ID, "bon.jpg", b"\xff\xd8"),
    "receipts.delete": lambda a: a.receipts.delete(ID),
    "typeless_documents.list": lambda a: list(a.typeless_documents.list(period="this_year")),
    "typeless_documents.get": lambda a: a.typeless_documents.get(ID),
    "typeless_documents.sync": lambda a: a.typeless_documents.sync(period="this_year"),
    "typeless_documents.fetch_many": lambda a: a.typeless_documents.fetch_many([ID]),
    "time_entries.list": lambda a: list(
        a.time_entries.list(filter={"state": "open"}, period="this_year")
    ),
    "time_entries.create": lambda a: a.time_entries.create(
        user_id=ID,
        started_at="2026-11-01T09:00:00Z",
        ended_at="2026-11-01T10:00:00Z",
        description="Advies",
    ),
    "time_entries.update": lambda a: a.time_entries.update(ID, description="Advies+"),
    "time_entries.stop": lambda a: a.time_entries.stop(ID),
    "products.list": lambda a: list(a.products.list(query="abonnement")),
    "products.create": lambda a: a.products.create(
        description="Abonnement", price="10.0", ledger_account_id=ID
    ),
    "projects.list": lambda a: list(a.projects.list()),
    "projects.create": lambda a: a.projects.create(name="Website"),
    "ledger_accounts.list": lambda a: list(a.ledger_accounts.list()),
    "ledger_accounts.get": lambda a: a.ledger_accounts.get(ID),
    "tax_rates.list": lambda a: list(a.tax_rates.list()),
    "webhooks.list": lambda a: list(a.webhooks.list()),
    "webhooks.create": lambda a: a.webhooks.create(
        "https://hooks.example/webhooks/moneybird", ["sales_invoice_state_changed_to_paid"]
    ),
    "webhooks.delete": lambda a: a.webhooks.delete(ID),
    "webhooks.activate": lambda a: a.webhooks.activate(ID),
    "webhooks.deactivate": lambda a: a.webhooks.deactivate(ID),
}


def record(operation: Op) -> list[httpx2.Request]:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return answer(request)

    client = Client(token="fake-contract-token-0123", transport=httpx2.MockTransport(handler))
    operation(client.administration(ADMIN))
    return sent


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_request_matches_moneybirds_spec(name: str, openapi: OpenAPI) -> None:
    """The request(s) this operation sends validate against the official spec."""
    sent = record(OPERATIONS[name])
    assert sent
    for request in sent:
        assert request.url.path.endswith(".json")
        openapi.validate_request(Recorded(request))


def test_validator_rejects_what_moneybird_would() -> None:
    """The contract check is real: a wrapped webhook body and a missing .json are refused."""
    spec = load()
    bad_body = httpx2.Request(
        "POST",
        f"https://moneybird.com/api/v2/{ADMIN}/webhooks.json",
        json={"webhook": {"url": "https://x"}, "events": ["contact_created"]},
        headers={"Authorization": "Bearer fake-contract-token-0123"},
    )
    with pytest.raises(Exception, match=r"(?i)invalid|unevaluated|additional"):
        spec.validate_request(Recorded(bad_body))
    bad_page = httpx2.Request(
        "GET",
        f"https://moneybird.com/api/v2/{ADMIN}/contacts.json?per_page=all",
        headers={"Authorization": "Bearer fake-contract-token-0123"},
    )
    with pytest.raises(Exception, match=r"(?i)invalid|maximum|parameter"):
        spec.validate_request(Recorded(bad_page))


# -- every operation of the spec, through its generated method -------------------------

STORAGE = "https://storage.moneybird.test/file/download"
RAW = json.loads(SPEC.read_text(encoding="utf-8"))


def spec_operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId → (HTTP method, path, operation) from the repository's spec copy."""
    found = {}
    for path, item in RAW["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (method.upper(), path, op)
    return found


SPEC_OPERATIONS = spec_operations()


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        _, section, kind, name = node["$ref"].split("/")
        node = RAW[section][kind][name]
    return node


def sample(schema: Any) -> Any:
    """A smallest valid value of ``schema``: required properties only."""
    schema = deref(schema)
    if "enum" in schema:
        return schema["enum"][0]
    for choice in ("oneOf", "anyOf"):
        if choice in schema:
            return sample(schema[choice][0])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(sample(part))
        return merged
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample(properties[name]) for name in schema.get("required", [])}
    if kind == "array":
        return [sample(schema.get("items", {}))] if schema.get("minItems") else []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    formats = {"date": "2026-11-01", "date-time": "2026-11-01T09:00:00Z"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    pattern = schema.get("pattern")
    return ID if pattern and re.search(pattern, ID) else "x"


def arguments(method: Callable[..., Any], op: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """What a handler author would pass: path ids, then the body the spec requires."""
    names = list(inspect.signature(method).parameters)
    path_params = [
        deref(p)["name"]
        for p in op.get("parameters", [])
        if deref(p).get("in") == "path" and deref(p)["name"] not in ("administration_id", "format")
    ]
    args: list[Any] = [ID] * len(path_params)
    kwargs: dict[str, Any] = {}
    if "ids" in names:
        kwargs["ids"] = [ID, "496081407814141081"]
        return args, kwargs
    for param in map(deref, op.get("parameters", [])):
        if param.get("in") == "query" and param.get("required"):
            kwargs[param["name"]] = sample(param.get("schema", {}))
    if "filename" in names:
        args += ["order.pdf", b"%PDF-1.4 order"]
    body = op.get("requestBody")
    if body is not None and "filename" not in names:
        schema = deref(next(iter(deref(body)["content"].values())).get("schema", {}))
        required = sample(schema)
        properties = list(schema.get("properties", {}))
        first = deref(schema["properties"][properties[0]]) if properties else {}
        wrapped = "attributes" in names and first.get("type") == "object"
        if wrapped:
            args.append(sample(first))
            kwargs.update({k: v for k, v in required.items() if k != properties[0]})
        elif "attributes" in names:
            args.append(required)
        else:
            kwargs.update(required)
    return args, kwargs


def answer_any(request: httpx2.Request, op: dict[str, Any]) -> httpx2.Response:
    if request.url.host == httpx2.URL(STORAGE).host:
        return httpx2.Response(200, content=b"%PDF-1.4 file")
    if "302" in op["responses"]:
        return httpx2.Response(302, headers={"Location": STORAGE}, text="moved")
    if request.method == "DELETE":
        return httpx2.Response(204)
    return httpx2.Response(200, json={"id": ID, "version": 1})


def path_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path.replace("{format}", ".json"))
    return re.compile(
        "/api/v2" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
    )


def test_every_operation_of_the_spec_has_a_method() -> None:
    """operations covers the spec exactly, and each path leads to a callable method."""
    assert sorted(operations) == sorted(SPEC_OPERATIONS)
    assert len(operations) == 296
    administration = Client(token="fake-contract-token-0123").administration(ADMIN)
    try:
        for operation_id in operations:
            assert callable(administration.operation(operation_id)), operation_id
    finally:
        administration.client.close()
    names = set(operations.values())
    assert not [n for n in names if re.search(r"(get|post|patch|delete)_administration", n)]
    assert {
        "sales_invoices.payments.create",
        "contacts.get_by_customer_id",
        "sales_invoices.pdf",
    } <= names


@pytest.mark.parametrize("operation_id", sorted(SPEC_OPERATIONS))
def test_generated_method_sends_what_the_spec_describes(
    operation_id: str, openapi: OpenAPI, recwarn: pytest.WarningsRecorder
) -> None:
    """The operation's method sends exactly the request of that operation, valid against
    the spec; downloads follow the redirect without sending the token along."""
    http_method, path, op = SPEC_OPERATIONS[operation_id]
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return answer_any(request, op)

    client = Client(token="fake-contract-token-0123", transport=httpx2.MockTransport(handler))
    try:
        method = client.administration(ADMIN).operation(operation_id)
        args, kwargs = arguments(method, op)
        result = method(*args, **kwargs)
        if inspect.isgenerator(result):
            list(result)
    finally:
        client.close()
    api_requests = [r for r in sent if r.url.host != httpx2.URL(STORAGE).host]
    assert len(api_requests) == 1
    request = api_requests[0]
    assert request.method == http_method
    assert path_pattern(path.replace("{administration_id}", ADMIN)).match(request.url.path)
    openapi.validate_request(Recorded(request))
    if "302" in op["responses"]:
        assert result == b"%PDF-1.4 file"
        assert [r.headers.get("authorization") for r in sent[1:]] == [None]
    deprecated = [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert len(deprecated) == bool(op.get("deprecated")), operation_id


def test_the_spec_copy_is_valid_openapi() -> None:
    """The spec the contract tests read passes openapi-core's own spec validation."""
    load(check_spec=True)
