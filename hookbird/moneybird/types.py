"""Moneybird's schemas as typed dicts, for handler authors (generated from the spec).

``ctx.moneybird.contacts.get(id)`` returns a :class:`Contact`; a push's entity gets the
same type with a cast, since hookbird cannot know the type of a push it has not seen::

    from typing import cast
    from hookbird.moneybird.types import Contact

    contact = cast(Contact, event.entity)  # contact_created, contact_changed, ...

The classes live in :mod:`hookbird.moneybird._generated.types` (rewritten by
``scripts/generate-moneybird``); this module is their stable address.
"""

from hookbird.moneybird._generated.types import *  # noqa: F403
from hookbird.moneybird._generated.types import __all__ as __all__
