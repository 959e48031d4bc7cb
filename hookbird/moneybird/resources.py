"""The resources of one administration, as a handler sees them (``ctx.moneybird``).

Every operation of Moneybird's API has a generated method (:mod:`._generated.api`,
one per operation of the spec, named as ``hookbird.moneybird.operations`` lists);
this module adds what the spec cannot say: ``changed_since`` on synchronizable
resources, the older names hookbird has always offered (``add_attachment``,
``download_pdf``), and typeless documents' refusal to update. IDs go in and come out
as ``str``: Moneybird's are 64-bit integers that JSON parsers in other languages round.

What each resource offers follows the API: ``get``, ``list`` (an iterator over every
page), ``create``, ``update``, ``delete``, and for synchronizable ones ``sync`` (ids
and versions of everything, cheap) and ``fetch_many`` (full records, 100 per call);
sub-resources hang below (``sales_invoices.payments.create``).

Imports run one way, resources → ``_generated`` → :mod:`client`, which never imports
either: :class:`Administration` takes any client (``Administration(client, id)``), and
the :class:`Client` exported by :mod:`hookbird.moneybird` is the sending client plus
``administration(id)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from hookbird.moneybird import client as base
from hookbird.moneybird._generated import api
from hookbird.moneybird._generated.operation_table import OPERATIONS

Id = str | int


class _Synchronizable(Protocol):
    def sync(self) -> list[dict[str, Any]]: ...

    def fetch_many(self, ids: Iterable[Id]) -> list[dict[str, Any]]: ...


class ChangedSince:
    """``changed_since`` for resources with the synchronization endpoints."""

    def changed_since(self: _Synchronizable, known: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Records whose version differs from ``known`` (id → version) or that are new."""
        changed = [s["id"] for s in self.sync() if str(known.get(s["id"])) != str(s["version"])]
        return self.fetch_many(changed)


class Contacts(ChangedSince, api.Contacts):
    pass


class SalesInvoices(ChangedSince, api.SalesInvoices):
    def add_attachment(self, id: Id, filename: str, content: bytes) -> None:
        """Attach a file (``attachments.create``)."""
        self.attachments.create(id, filename, content)

    def download_pdf(self, id: Id) -> bytes:
        """The invoice PDF (``pdf``): Moneybird redirects to storage; the token stays here."""
        return self.pdf(id)


class Estimates(ChangedSince, api.Estimates):
    def add_attachment(self, id: Id, filename: str, content: bytes) -> None:
        """Attach a file (``attachments.create``)."""
        self.attachments.create(id, filename, content)


class PurchaseInvoices(ChangedSince, api.PurchaseInvoices):
    def add_attachment(self, id: Id, filename: str, content: bytes) -> None:
        """Attach a file (``attachments.create``)."""
        self.attachments.create(id, filename, content)


class Receipts(ChangedSince, api.Receipts):
    def add_attachment(self, id: Id, filename: str, content: bytes) -> None:
        """Attach a file (``attachments.create``)."""
        self.attachments.create(id, filename, content)


class TypelessDocuments(ChangedSince, api.TypelessDocuments):
    def add_attachment(self, id: Id, filename: str, content: bytes) -> None:
        """Attach a file (``attachments.create``)."""
        self.attachments.create(id, filename, content)

    def update(
        self, id: Id, attributes: dict[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """Moneybird has no PATCH for typeless documents: delete and create instead."""
        raise NotImplementedError("Moneybird cannot update a typeless document")


class Administration(api.Api):
    """One administration's resources; a handler's ``ctx.moneybird``."""

    contacts: Contacts
    sales_invoices: SalesInvoices
    estimates: Estimates
    purchase_invoices: PurchaseInvoices
    receipts: Receipts
    typeless_documents: TypelessDocuments

    def __init__(self, client: base.Client, administration_id: str) -> None:
        super().__init__(client, str(administration_id))
        self.contacts = Contacts(client, self.id)
        self.sales_invoices = SalesInvoices(client, self.id)
        self.estimates = Estimates(client, self.id)
        self.purchase_invoices = PurchaseInvoices(client, self.id)
        self.receipts = Receipts(client, self.id)
        self.typeless_documents = TypelessDocuments(client, self.id)

    def operation(self, operation_id: str) -> Callable[..., Any]:
        """The method for one of the spec's ``operationId``s (see docs/moneybird-api.md)."""
        try:
            dotted = OPERATIONS[operation_id]
        except KeyError:
            raise KeyError(f"Moneybird's spec has no operation {operation_id!r}") from None
        found: Any = self
        for part in dotted.split("."):
            found = getattr(found, part)
        method: Callable[..., Any] = found
        return method

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Anything else, relative to the administration: ``request("GET", "/reports/tax")``."""
        return self.client.request(
            method, f"/{self.id}/{path.lstrip('/')}", administration_id=self.id, **kwargs
        )

    def __repr__(self) -> str:
        return f"Administration({self.id!r})"


class Client(base.Client):
    """The sending :class:`client.Client` plus :meth:`administration`; what
    ``from hookbird.moneybird import Client`` gives handlers and commands."""

    def administration(self, administration_id: str | int) -> Administration:
        """One administration's resources: a handler's ``ctx.moneybird``."""
        return Administration(self, str(administration_id))
