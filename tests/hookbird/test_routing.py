"""Router matching and composition, without Redis."""

from __future__ import annotations

import warnings

import pytest

from hookbird import Context, Event, Router
from hookbird.routing import RoutingError, UnknownEventWarning, handler_name


def paid(event: Event, ctx: Context) -> None: ...


def any_contact(event: Event, ctx: Context) -> None: ...


def everything(event: Event, ctx: Context) -> None: ...


def names(router: Router, action: str, entity_type: str | None = None) -> list[str]:
    return [h.name.split(":")[1] for h in router.handlers_for(action, entity_type)]


def test_exact_name_matches_only_itself() -> None:
    """An official event name reaches its handler and no longer event sharing its prefix."""
    router = Router()
    router.on("contact_created")(any_contact)
    assert names(router, "contact_created") == ["any_contact"]
    assert names(router, "contact_created_from_checkout_order") == []


def test_group_matches_every_event_in_it() -> None:
    """An event group reaches every action that starts with it, and nothing else."""
    router = Router()
    router.on("sales_invoice_state_changed")(paid)
    assert names(router, "sales_invoice_state_changed_to_paid") == ["paid"]
    assert names(router, "sales_invoice_state_changed_to_late") == ["paid"]
    assert names(router, "sales_invoice_created") == []


def test_star_matches_everything_and_order_is_registration_order() -> None:
    """``*`` reaches every push; handlers run in the order they were registered."""
    router = Router()
    router.on("*")(everything)
    router.on("sales_invoice")(paid)
    assert names(router, "sales_invoice_state_changed_to_paid") == ["everything", "paid"]
    assert names(router, "anything_at_all") == ["everything"]


def test_entity_type_narrows_a_route() -> None:
    """``entity_type=`` keeps pushes about other entity types away from the handler."""
    router = Router()
    router.on("*", entity_type="Contact")(any_contact)
    assert names(router, "contact_changed", "Contact") == ["any_contact"]
    assert names(router, "contact_changed", "SalesInvoice") == []


def test_routers_compose_and_a_handler_runs_once_per_push() -> None:
    """Router(a, b) has both routers' handlers; a handler matched twice appears once."""
    billing, crm = Router(), Router()
    billing.on("sales_invoice_state_changed_to_paid")(paid)
    crm.on("contact_created")(any_contact)
    crm.on("contact")(any_contact)
    crm.on("contact_changed", latest_only=True)(any_contact)
    root = Router(billing, crm)
    assert names(root, "sales_invoice_state_changed_to_paid") == ["paid"]
    assert names(root, "contact_created") == ["any_contact"]
    (handler,) = root.handlers_for("contact_changed")
    assert handler.latest_only
    assert not root.handlers_for("contact_created")[0].latest_only


def test_handler_names_are_module_and_function() -> None:
    """A handler's stable name is ``module:function``."""
    assert handler_name(paid) == f"{__name__}:paid"


def test_two_functions_with_one_name_are_refused() -> None:
    """Composing two different functions that share a name raises instead of mixing records."""

    def make() -> object:
        def sync(event: Event, ctx: Context) -> None: ...

        return sync

    first, second = Router(), Router()
    first.add("contact", make())  # type: ignore[arg-type]
    second.add("contact", make())  # type: ignore[arg-type]
    with pytest.raises(RoutingError):
        Router(first, second)


def test_unknown_event_names_warn_with_a_suggestion() -> None:
    """A route naming an unofficial event warns and suggests the closest official name."""
    router = Router()
    with pytest.warns(UnknownEventWarning, match="sales_invoice_created"):
        router.on("sales_invoice_creatd")(paid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        router.on("sales_invoice")(paid)
    assert names(router, "sales_invoice_creatd") == ["paid"]


def test_on_returns_the_function_it_decorates() -> None:
    """``@router.on(...)`` leaves the module's name bound to the handler itself."""
    router = Router()
    assert router.on("contact")(any_contact) is any_contact


def test_an_empty_pattern_is_refused() -> None:
    """A route with no event name, group or ``*`` raises instead of matching everything."""
    router = Router()
    with pytest.raises(RoutingError, match="needs an event name"):
        router.on("")(paid)
    with pytest.raises(RoutingError):
        router.add("", paid)
    assert len(router) == 0


def test_add_registers_for_every_version_by_default() -> None:
    """``add()`` without ``latest_only`` gives a handler that sees every version, as
    ``on()`` does."""
    router = Router()
    router.add("contact", any_contact)
    router.on("sales_invoice")(paid)
    assert [h.latest_only for h in router.handlers_for("contact_changed")] == [False]
    assert [h.latest_only for h in router.handlers_for("sales_invoice_created")] == [False]


def test_routes_describe_themselves_and_count() -> None:
    """``describe()`` is what ``hookbird handlers`` prints; ``len()`` counts routes, and
    composing the same router twice adds nothing."""
    router = Router()
    router.on("contact", entity_type="Contact", latest_only=True)(any_contact)
    router.on("sales_invoice")(paid)
    router.on("*")(everything)
    assert [r.describe() for r in router] == [
        "contact [Contact] latest-only",
        "sales_invoice",
        "*",
    ]
    assert len(router) == 3
    assert len(Router(router, router)) == 3
    assert [r.name for r in router.routes] == [r.name for r in router]


def test_included_routes_keep_where_they_came_from() -> None:
    """``include(router, source=…)`` labels its handlers; composing again keeps the label
    the first router had, and a second label does not replace the first."""
    crm = Router()
    crm.on("contact")(any_contact)
    plugins = Router()
    plugins.include(crm, source="entry point crm")
    assert plugins.sources == {handler_name(any_contact): "entry point crm"}
    root = Router(plugins)
    root.include(crm, source="HOOKBIRD_HANDLERS")
    assert root.sources == {handler_name(any_contact): "entry point crm"}
    assert Router(crm).sources == {}


def test_an_unknown_event_warning_points_at_the_line_that_registered_it() -> None:
    """The warning names the handler author's file, not hookbird's."""
    router = Router()
    with pytest.warns(UnknownEventWarning) as caught:
        router.on("sales_invoice_creatd")(paid)
    assert caught[0].filename == __file__


def test_skip_own_writes_holds_only_when_every_matching_route_says_so() -> None:
    """A handler reached by a skip_own_writes route and a plain one still gets its echoes;
    the route shows the flag."""
    from hookbird.routing import Router as Routes

    both, only = Routes(), Routes()

    def sync(event: object, ctx: object) -> None:
        """A two-way sync."""

    both.add("contact_changed", sync, skip_own_writes=True)
    both.add("contact", sync)
    only.add("contact_changed", sync, skip_own_writes=True)
    assert [h.skip_own_writes for h in both.handlers_for("contact_changed")] == [False]
    assert [h.skip_own_writes for h in only.handlers_for("contact_changed")] == [True]
    assert only.routes[0].describe() == "contact_changed skip-own-writes"


def refresh(events: list[Event], ctx: Context) -> None: ...


def test_a_batch_route_carries_its_size_and_window_to_the_handler() -> None:
    """batch=/window= reach handlers_for and describe(); the window defaults to 2 s."""
    router = Router()
    router.on("contact_changed", batch=100, window=5)(refresh)
    router.add("contact", refresh, batch=10)
    (handler,) = router.handlers_for("contact_changed")
    assert (handler.batch, handler.window) == (100, 5.0)
    assert router.routes[1].window == 2.0
    assert router.routes[0].describe() == "contact_changed latest-only batch 100/5s"
    assert handler.latest_only  # a batch route is latest-only unless it says otherwise
    router.add("contact_created", refresh, batch=10, latest_only=False)
    assert not router.routes[2].latest_only
    assert Router().handlers_for("contact_changed") == []


@pytest.mark.parametrize(
    ("batch", "window", "message"),
    [
        (0, None, "1 to 100"),
        (101, None, "1 to 100"),
        (5, 0.0, "more than 0"),
        (None, 2, "goes with"),
    ],
)
def test_a_batch_route_out_of_bounds_is_refused(
    batch: int | None, window: float | None, message: str
) -> None:
    """Batches of 1 to 100 events (a synchronization call's ids), windows up to 60 s."""
    with pytest.raises(RoutingError, match=message):
        Router().add("contact_changed", refresh, batch=batch, window=window)


def test_one_function_cannot_be_both_a_batch_and_a_one_event_handler() -> None:
    """The two take different arguments: registering both ways is refused at once."""
    router = Router()
    router.add("contact_changed", refresh, batch=10)
    with pytest.raises(RoutingError, match="both as a batch handler"):
        router.add("contact_created", refresh)


def test_batch_bounds_are_inclusive_and_a_plain_route_has_no_batch() -> None:
    """1 and 100 events, a window of 60 s or a tenth of one are taken; a plain route: 0, 0."""
    router = Router()
    router.add("contact_changed", refresh, batch=1, window=0.1)
    router.add("contact_created", refresh, batch=100, window=60)
    with pytest.raises(RoutingError):
        router.add("contact_destroyed", refresh, batch=10, window=60.5)
    assert [(r.batch, r.window) for r in router.routes] == [(1, 0.1), (100, 60.0)]
    plain = Router()
    plain.add("contact_changed", paid)
    (route,) = plain.routes
    (handler,) = plain.handlers_for("contact_changed")
    assert (route.batch, route.window, handler.batch, handler.window) == (0, 0.0, 0, 0.0)
    assert not route.latest_only
