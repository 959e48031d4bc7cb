"""The resources of one administration, as a handler sees them (``ctx.moneybird``).

Every operation of Moneybird's API has a generated method (:mod:`._generated.api`,
one per operation of the spec, named as ``hookbird.moneybird.operations`` lists, with
``changed_since`` on synchronizable resources and the older names hookbird has always
offered, ``add_attachment`` and ``download_pdf``). This module adds what the spec
cannot say: typeless documents' refusal to update, and :class:`Client`, the sending
client plus ``administration(id)``. IDs go in and come out as ``str``: Moneybird's are
64-bit integers that JSON parsers in other languages round.

What each resource offers follows the API: ``get``, ``list`` (an iterator over every
page), ``create``, ``update``, ``delete``, and for synchronizable ones ``sync`` (ids
and versions of everything, cheap) and ``fetch_many`` (full records, 100 per call);
sub-resources hang below (``sales_invoices.payments.create``).

Imports run one way, resources → ``_generated`` → :mod:`client`, which never imports
either: :class:`Administration` takes any client (``Administration(client, id)``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from hookbird.moneybird import client as base
from hookbird.moneybird._generated import api


class TypelessDocuments(api.TypelessDocuments):
    def update(
        self, id: str | int, attributes: dict[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """Moneybird has no PATCH for typeless documents: delete and create instead."""
        raise NotImplementedError("Moneybird cannot update a typeless document")


class Administration(api.Api):
    """One administration's resources; a handler's ``ctx.moneybird``."""

    @cached_property
    def typeless_documents(self) -> TypelessDocuments:
        return TypelessDocuments(self.client, self.id)


class Client(base.Client):
    """The sending :class:`client.Client` plus :meth:`administration`; what
    ``from hookbird.moneybird import Client`` gives handlers and commands."""

    def administration(self, administration_id: str | int) -> Administration:
        """One administration's resources: a handler's ``ctx.moneybird``."""
        return Administration(self, str(administration_id))
