"""The resources of one administration, as a handler sees them (``ctx.moneybird``).

Each resource knows its path and how Moneybird wraps its bodies
(``{"contact": {...}}``); everything else (budget, auth, retries, errors) is the
client's. IDs go in and come out as ``str``: Moneybird's are 64-bit integers that
JSON parsers in other languages round.

What each resource offers follows the API: ``get``, ``list`` (an iterator over every
page), ``create``, ``update``, ``delete``, and for synchronizable ones ``sync`` (ids
and versions of everything, cheap) and ``fetch_many`` (full records, 100 per call).

This module sits on :mod:`client`, which never imports it: :class:`Administration`
takes any client (``Administration(client, id)``), and the :class:`Client` exported
by :mod:`hookbird.moneybird` is the sending client plus ``administration(id)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hookbird.moneybird import client as base
from hookbird.moneybird import filters

SYNC_CHUNK = 100


class Resource:
    """A list endpoint of an administration (``/{administration_id}/{path}.json``)."""

    paginated = True

    def __init__(self, administration: Administration, path: str, wrapper: str) -> None:
        self.administration = administration
        self.path = path
        self.wrapper = wrapper

    def _url(self, *parts: str | int) -> str:
        tail = "/".join(str(p) for p in parts)
        return f"/{self.administration.id}/{self.path}" + (f"/{tail}" if tail else "")

    def _call(self, method: str, *parts: str | int, **kwargs: Any) -> Any:
        return self.administration.client.request(
            method, self._url(*parts), administration_id=self.administration.id, **kwargs
        )

    def list(
        self,
        filter: str | Mapping[str, object] | None = None,
        *,
        period: object = None,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every record (all pages, ``per_page=100``).

        ``filter`` is Moneybird's filter, as a string or a dict (:mod:`filters`);
        ``period`` joins it (``"prev_year"``, ``("2020-01-01", "2026-12-31")``). Other
        keyword arguments are query parameters as Moneybird names them.
        """
        query = self._query(filter, period, params)
        client = self.administration.client
        if not self.paginated:
            found = self._call("GET", params=query or None)
            yield from found if isinstance(found, list) else []
            return
        yield from client.paginate(self._url(), query, administration_id=self.administration.id)

    def _query(
        self, filter: str | Mapping[str, object] | None, period: object, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The query of a listing: ``period`` merged into ``filter``, warned about when a
        resource that hides older records by default gets none (see :mod:`filters`)."""
        if period is not None:
            if isinstance(filter, str):
                if filters.has_period(filter):
                    raise ValueError("give the period once: in filter or as period=, not both")
                filter = ",".join(t for t in (filter, filters.build({"period": period})) if t)
            else:
                if filter is not None and filter.get("period") is not None:
                    raise ValueError("give the period once: in filter or as period=, not both")
                filter = {**(filter or {}), "period": period}
        else:
            filters.check_period(self.path, filter, stacklevel=3)  # list/sync → their caller
        return {**params, "filter": filter} if filter else params


class ReadOnly(Resource):
    """Only listable (tax rates)."""


class Crud(Resource):
    """get / create / update / delete, bodies wrapped in ``{wrapper: {...}}``."""

    def get(self, id: str | int) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", id)
        return found

    def create(self, attributes: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        created: dict[str, Any] = self._call(
            "POST", json={self.wrapper: {**(attributes or {}), **more}}
        )
        return created

    def update(
        self, id: str | int, attributes: dict[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        updated: dict[str, Any] = self._call(
            "PATCH", id, json={self.wrapper: {**(attributes or {}), **more}}
        )
        return updated

    def delete(self, id: str | int) -> None:
        self._call("DELETE", id)


class Synced(Crud):
    """Adds the synchronization endpoints: ``sync`` and ``fetch_many``."""

    def sync(
        self,
        filter: str | Mapping[str, object] | None = None,
        *,
        period: object = None,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """``[{"id": str, "version": int}]`` of every record (one call, no pagination);
        ``filter`` and ``period`` as in :meth:`list`."""
        query = self._query(filter, period, params)
        found = self._call("GET", "synchronization", params=query or None)
        return [
            {"id": str(item["id"]), "version": item.get("version")}
            for item in found or []
            if isinstance(item, dict) and "id" in item
        ]

    def fetch_many(self, ids: Iterable[str | int]) -> list[dict[str, Any]]:
        """Full records for ``ids``: one POST per 100 instead of one GET each."""
        wanted = [str(i) for i in ids]
        records: list[dict[str, Any]] = []
        for start in range(0, len(wanted), SYNC_CHUNK):
            chunk = wanted[start : start + SYNC_CHUNK]
            found = self._call("POST", "synchronization", json={"ids": chunk})
            records.extend(found or [])
        return records

    def changed_since(
        self,
        known: dict[str, Any],
        filter: str | Mapping[str, object] | None = None,
        *,
        period: object = None,
    ) -> list[dict[str, Any]]:
        """Records whose version differs from ``known`` (id → version) or that are new;
        ``filter`` and ``period`` narrow the :meth:`sync` it starts from."""
        synced = self.sync(filter, period=period)
        changed = [s["id"] for s in synced if str(known.get(s["id"])) != str(s["version"])]
        return self.fetch_many(changed)


class Attachable(Synced):
    """Documents that take file attachments (multipart upload)."""

    def add_attachment(self, id: str | int, filename: str, content: bytes) -> None:
        self._call("POST", id, "attachments", files={"file": (filename, content)})


class SalesInvoices(Attachable):
    def send(self, id: str | int, **sending: Any) -> dict[str, Any]:
        """Send the invoice (``delivery_method`` Email, Peppol or Manual, …)."""
        sent: dict[str, Any] = self._call(
            "PATCH", id, "send_invoice", json={"sales_invoice_sending": sending}
        )
        return sent

    def register_payment(self, id: str | int, **payment: Any) -> Any:
        """Register a payment (``payment_date``, ``price``, …). Never retried automatically."""
        return self._call("PATCH", id, "register_payment", json={"payment": payment})

    def download_pdf(self, id: str | int) -> bytes:
        """The invoice PDF (Moneybird redirects to storage; the token is not sent there)."""
        client = self.administration.client
        response = client.send(
            "GET",
            self._url(id, "download_pdf"),
            administration_id=self.administration.id,
            follow_redirects=True,
        )
        return response.content

    def find_by_invoice_id(self, invoice_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", "find_by_invoice_id", invoice_id)
        return found


class Estimates(Attachable):
    def send(self, id: str | int, **sending: Any) -> dict[str, Any]:
        sent: dict[str, Any] = self._call(
            "PATCH", id, "send_estimate", json={"estimate_sending": sending}
        )
        return sent


class PayableDocuments(Attachable):
    """Purchase invoices and receipts."""

    def register_payment(self, id: str | int, **payment: Any) -> Any:
        return self._call("PATCH", id, "register_payment", json={"payment": payment})


class TypelessDocuments(Attachable):
    def update(
        self, id: str | int, attributes: dict[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """Moneybird has no PATCH for typeless documents: delete and create instead."""
        raise NotImplementedError("Moneybird cannot update a typeless document")


class TimeEntries(Crud):
    """Billable hours (listing defaults to this year: give ``period=``, see :mod:`filters`)."""

    def stop(self, id: str | int) -> dict[str, Any]:
        stopped: dict[str, Any] = self._call("PATCH", id, "stop")
        return stopped


class LedgerAccounts(Crud):
    paginated = False


class Webhooks(Resource):
    """Webhook subscriptions; bodies are NOT wrapped and use ``enabled_events``."""

    paginated = False

    def create(self, url: str, enabled_events: Iterable[str] = ()) -> dict[str, Any]:
        """Register ``url``; the answer holds ``id``, ``token`` and ``secret`` (only now)."""
        created: dict[str, Any] = self._call(
            "POST", json={"url": url, "enabled_events": list(enabled_events)}
        )
        return created

    def delete(self, id: str | int) -> None:
        self._call("DELETE", id)

    def activate(self, id: str | int) -> None:
        self._call("PATCH", id, "activate")

    def deactivate(self, id: str | int) -> None:
        self._call("PATCH", id, "deactivate")


class Administration:
    """One administration's resources; a handler's ``ctx.moneybird``."""

    def __init__(self, client: base.Client, administration_id: str) -> None:
        self.client = client
        self.id = str(administration_id)
        self.contacts = Synced(self, "contacts", "contact")
        self.sales_invoices = SalesInvoices(self, "sales_invoices", "sales_invoice")
        self.estimates = Estimates(self, "estimates", "estimate")
        self.purchase_invoices = PayableDocuments(
            self, "documents/purchase_invoices", "purchase_invoice"
        )
        self.receipts = PayableDocuments(self, "documents/receipts", "receipt")
        self.typeless_documents = TypelessDocuments(
            self, "documents/typeless_documents", "typeless_document"
        )
        self.time_entries = TimeEntries(self, "time_entries", "time_entry")
        self.products = Crud(self, "products", "product")
        self.projects = Crud(self, "projects", "project")
        self.ledger_accounts = LedgerAccounts(self, "ledger_accounts", "ledger_account")
        self.tax_rates = ReadOnly(self, "tax_rates", "tax_rate")
        self.webhooks = Webhooks(self, "webhooks", "webhook")

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
