"""OAuth2 for SaaS setups: one token pair per grant, shared by its administrations.

The authorization-code flow: send the customer to :meth:`OAuthApp.authorize_url`
(scopes chosen explicitly; it makes the ``state`` to keep in the customer's session),
receive ``?code=…&state=…`` on the redirect URI, :func:`verify_state`, :func:`exchange`
the code for tokens, keep them in the
:class:`~hookbird.moneybird.credentials.CredentialStore` as one grant.

Tokens are refreshed when they are about to expire or when Moneybird answers 401.
With many worker processes, many of them notice at once; a Redis lock per grant lets
exactly one refresh while the others wait and then reuse the token it stored (a
refresh token can be spent only once, so two refreshes would log the second one out).
The refresh call has an overall deadline and the lock lives longer than it; the result
is stored only while the lock is still ours and the grant unchanged (one Lua step), so
a refresher that lost its lock cannot overwrite a newer pair. When Moneybird answers
``invalid_grant`` the grant is marked as needing re-authorisation and no process calls
the token endpoint for it again: :class:`ReauthorizationNeeded` (permanent) names the fix.

Token sources (what the client asks for a bearer token) live here too:
:class:`StaticToken` for a personal token, :class:`StoredTokens` for the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx2
import redis

from hookbird.logs import add_known_secrets, get_logger
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore, Stored
from hookbird.moneybird.errors import MoneybirdError, TransientError, Unauthorized
from hookbird.settings import Settings

#: Every scope Moneybird offers; ask only for the ones the integration needs.
SCOPES = ("sales_invoices", "documents", "estimates", "bank", "time_entries", "settings")
DEFAULT_OAUTH_URL = "https://moneybird.com/oauth"
REFRESH_AHEAD = 60.0
#: Seconds a refresh call may take in all (connect, send, wait, read); the lock outlives it.
REFRESH_DEADLINE = 20.0
LOCK_MARGIN = 10.0
REAUTHORIZE = "authorise it again: `hookbird oauth url`, then `hookbird oauth exchange`"

log = get_logger("moneybird.oauth")


@dataclass(frozen=True)
class OAuthApp:
    """A Moneybird OAuth application (register it at moneybird.com/user/applications)."""

    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: tuple[str, ...] = ("sales_invoices", "documents", "settings")
    oauth_url: str = DEFAULT_OAUTH_URL

    def __post_init__(self) -> None:
        unknown = [s for s in self.scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scope(s) {', '.join(unknown)}; pick from {' '.join(SCOPES)}")

    def authorize_url(self, state: str | None = None) -> tuple[str, str]:
        """The URL to send the customer to, and its ``state`` (random unless given).

        Keep the state with the customer's session and check the one the redirect
        brings back with :func:`verify_state` before exchanging the code.
        """
        # hex: a state beginning with '-' would read as an option to `hookbird oauth exchange`
        state = state or secrets.token_hex(24)
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scopes),
            "state": state,
        }
        return f"{self.oauth_url}/authorize?{urlencode(params)}", state

    def exchange_form(self, code: str) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "redirect_uri": self.redirect_uri,
            "grant_type": "authorization_code",
        }

    def refresh_form(self, refresh_token: str) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": refresh_token,
            "grant_type": "refresh_token",
        }


class StateMismatch(ValueError):
    """The redirect's ``state`` is missing or not the one this customer was sent with."""


def verify_state(expected: str, received: str | None) -> None:
    """Raise StateMismatch unless the redirect's state equals the one sent (constant time)."""
    if not expected:
        raise StateMismatch("no state was kept for this authorisation")
    if not received or not hmac.compare_digest(expected.encode(), received.encode()):
        raise StateMismatch(
            "the redirect's state does not match the one sent: the code may not be this "
            "customer's; start again with a new authorize URL"
        )


class ReauthorizationNeeded(Unauthorized):
    """Moneybird refused the grant (``invalid_grant``): only a new authorisation helps."""


def oauth_app(settings: Settings) -> OAuthApp | None:
    """The OAuth application configured in settings, if any (bad scopes: ValueError)."""
    if not (settings.oauth_client_id and settings.oauth_client_secret):
        return None
    return OAuthApp(
        client_id=settings.oauth_client_id,
        client_secret=settings.oauth_client_secret,
        redirect_uri=settings.oauth_redirect_uri,
        scopes=settings.oauth_scopes,
        oauth_url=settings.oauth_url,
    )


def credential_from_token_response(data: Any, now: float) -> Credential:
    """The credential in a token endpoint's JSON answer."""
    if not isinstance(data, dict) or not data.get("access_token"):
        raise MoneybirdError("the OAuth token endpoint answered without an access_token")
    expires_in = data.get("expires_in")
    return Credential(
        access_token=str(data["access_token"]),
        refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
        expires_at=now + float(expires_in) if expires_in else None,
        scopes=tuple(str(data.get("scope") or "").split()),
        kind="oauth",
    )


def _post_within(
    http: httpx2.Client, url: str, form: dict[str, str], deadline: float
) -> httpx2.Response:
    """POST, giving up after ``deadline`` seconds in all (httpx's timeouts are per phase).

    The request runs in a daemon thread; past the deadline the caller gets a
    TransientError and the answer is dropped. The thread's own per-phase timeouts
    end a second after the deadline, so that a slow endpoint is always reported as
    slow (a read timeout firing first would say "unreachable") and the thread still
    ends soon after.
    """
    outcome: list[httpx2.Response | BaseException] = []
    done = threading.Event()

    def send() -> None:
        try:
            outcome.append(http.post(url, data=form, timeout=httpx2.Timeout(deadline + 1.0)))
        except BaseException as exc:  # handed to the caller below
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=send, name="hookbird-oauth-refresh", daemon=True).start()
    if not done.wait(deadline):
        raise TransientError(
            f"OAuth token endpoint did not answer within {deadline:g} s",
            method="POST",
            path="/oauth/token",
        )
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _token_call(
    app: OAuthApp, http: httpx2.Client, form: dict[str, str], deadline: float | None = None
) -> Credential:
    path = "/oauth/token"
    url = f"{app.oauth_url}/token"
    try:
        if deadline is None:
            response = http.post(url, data=form)
        else:
            response = _post_within(http, url, form, deadline)
    except httpx2.TransportError as exc:
        raise TransientError(
            f"OAuth token endpoint unreachable: {type(exc).__name__}", method="POST", path=path
        ) from None
    if response.status_code >= 500:
        raise TransientError(
            f"OAuth token endpoint answered {response.status_code}",
            status_code=response.status_code,
            method="POST",
            path=path,
        )
    if response.status_code != 200:
        body = response.text[:500]
        if _error_code(response) == "invalid_grant":
            raise ReauthorizationNeeded(
                f"Moneybird refused the OAuth grant (invalid_grant); {REAUTHORIZE}",
                status_code=response.status_code,
                method="POST",
                path=path,
            )
        raise Unauthorized(
            f"OAuth token endpoint refused ({response.status_code}): {body}",
            status_code=response.status_code,
            method="POST",
            path=path,
            body=body,
        )
    credential = credential_from_token_response(response.json(), time.time())
    add_known_secrets([credential.access_token, credential.refresh_token or ""])
    return credential


def _error_code(response: httpx2.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return str(data.get("error")) if isinstance(data, dict) else None


def exchange(app: OAuthApp, code: str, http: httpx2.Client) -> Credential:
    """Trade an authorization code for a token pair."""
    return _token_call(app, http, app.exchange_form(code))


def refresh(
    app: OAuthApp, refresh_token: str, http: httpx2.Client, deadline: float | None = None
) -> Credential:
    """Trade a refresh token for a new pair (the old refresh token is spent).

    ``deadline``: seconds the whole call may take; past it, TransientError.
    """
    return _token_call(app, http, app.refresh_form(refresh_token), deadline)


class TokenSource(Protocol):
    """Where the client gets the bearer token for an administration."""

    def token_for(self, administration_id: str | None) -> str:
        """The token to send now."""

    def after_unauthorized(self, administration_id: str | None, stale: str) -> str | None:
        """A different token to try after ``stale`` got 401, or None if there is none."""

    def budget_key(self, administration_id: str | None, token: str) -> str:
        """Which rate budget a request with ``token`` draws from (stable across refreshes)."""


def token_key(token: str) -> str:
    """A budget key for a token that does not reveal it."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]


class StaticToken:
    """One personal API token for every administration it can see."""

    def __init__(self, token: str) -> None:
        self._token = token
        add_known_secrets([token])

    def token_for(self, administration_id: str | None) -> str:
        return self._token

    def after_unauthorized(self, administration_id: str | None, stale: str) -> str | None:
        return None

    def budget_key(self, administration_id: str | None, token: str) -> str:
        return token_key(token)


class StoredTokens:
    """Tokens from the credential store, refreshed under a Redis lock; a fallback token else."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        app: OAuthApp | None = None,
        http: httpx2.Client | None = None,
        fallback: str | None = None,
        refresh_deadline: float = REFRESH_DEADLINE,
    ) -> None:
        self.store = store
        self.app = app
        self.http = http or httpx2.Client(timeout=30.0)
        self.fallback = fallback
        self.refresh_deadline = refresh_deadline
        self.lock_timeout = refresh_deadline + LOCK_MARGIN  # outlives the whole refresh
        self.refreshes = 0  # refreshes this process made (tests, metrics)
        self._budget_keys: dict[str, str] = {}  # token → budget key, learnt in token_for
        if fallback:
            add_known_secrets([fallback])

    def _load(self, administration_id: str) -> Stored | None:
        try:
            return self.store.load(administration_id)
        except CredentialError as exc:  # the wrong key: no call can succeed until it is fixed
            raise Unauthorized(str(exc)) from None

    def token_for(self, administration_id: str | None) -> str:
        stored = self._load(administration_id) if administration_id else None
        if stored is None:
            if self.fallback:
                return self.fallback
            raise Unauthorized(
                f"no Moneybird credentials for administration {administration_id}: connect it "
                "with `hookbird oauth url` + `hookbird oauth exchange CODE`, or set "
                "MONEYBIRD_API_TOKEN"
            )
        assert administration_id is not None
        credential = stored.credential
        _refuse_revoked(administration_id, credential)
        token = credential.access_token
        if self.app and credential.expires_within(REFRESH_AHEAD):
            token = self._refresh(administration_id, token)
        if credential.kind == "oauth":
            # An OAuth token changes at every refresh; its administration's budget does not.
            self._budget_keys[token] = f"administration:{administration_id}"
        return token

    def after_unauthorized(self, administration_id: str | None, stale: str) -> str | None:
        if not administration_id or self.app is None:
            return None
        stored = self._load(administration_id)
        if stored is None or stored.credential.refresh_token is None:
            return None
        fresh = self._refresh(administration_id, stale)
        self._budget_keys[fresh] = f"administration:{administration_id}"
        return None if fresh == stale else fresh

    def budget_key(self, administration_id: str | None, token: str) -> str:
        """OAuth: the administration's budget; personal tokens: the token's (shared by all
        the administrations it is stored for, as Moneybird counts it)."""
        return self._budget_keys.get(token) or token_key(token)

    def _lock_name(self, credential: Credential) -> str:
        """One lock per grant; older direct entries lock on their (shared) refresh token."""
        if credential.grant_id is not None:
            return f"hookbird:oauth:refresh:grant:{credential.grant_id}"
        digest = hashlib.sha256((credential.refresh_token or "").encode()).hexdigest()[:16]
        return f"hookbird:oauth:refresh:token:{digest}"

    def _refresh(self, administration_id: str, stale: str) -> str:
        """Refresh once across all processes; everyone gets the token that refresh stored."""
        assert self.app is not None
        first = self._load(administration_id)
        if first is None or first.credential.refresh_token is None:
            raise Unauthorized(f"administration {administration_id} has no refresh token")
        _refuse_revoked(administration_id, first.credential)
        lock = self.store.redis.lock(
            self._lock_name(first.credential),
            timeout=self.lock_timeout,
            blocking_timeout=self.lock_timeout + 5,
        )
        if not lock.acquire():
            raise TransientError(f"could not get the OAuth refresh lock of {administration_id}")
        try:
            current = self._load(administration_id)
            if current is None or current.credential.refresh_token is None:
                _refuse_revoked(administration_id, current.credential if current else None)
                raise Unauthorized(f"administration {administration_id} has no refresh token")
            held = current.credential
            if held.grant_id != first.credential.grant_id:
                # Moved into a grant while we waited: that grant's lock is the one to hold.
                lock.release()
                return self._refresh(administration_id, stale)
            if held.access_token != stale and not held.expires_within(REFRESH_AHEAD):
                return held.access_token  # another process refreshed while we waited
            assert held.refresh_token is not None
            try:
                fresh = refresh(self.app, held.refresh_token, self.http, self.refresh_deadline)
            except ReauthorizationNeeded:
                self._mark_revoked(administration_id, lock, current)
                raise
            if fresh.refresh_token is None:
                fresh = replace(fresh, refresh_token=held.refresh_token)
            fresh = replace(fresh, scopes=fresh.scopes or held.scopes)
            if not self.store.swap(lock, current, fresh):
                # The lock expired or another process stored a pair meanwhile: theirs stands.
                log.warning("oauth_refresh_superseded", administration_id=administration_id)
                return self._stored_instead(administration_id, stale)
            self.refreshes += 1
            log.info(
                "oauth_token_refreshed", administration_id=administration_id, grant=held.grant_id
            )
            return fresh.access_token
        finally:
            # Released above, or expired: then swap() refused to store with it.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _stored_instead(self, administration_id: str, stale: str) -> str:
        """The pair another process stored while our refresh could not be; else retry later."""
        now = self._load(administration_id)
        if now is not None:
            _refuse_revoked(administration_id, now.credential)
            token = now.credential.access_token
            if token != stale and not now.credential.expires_within(REFRESH_AHEAD):
                return token
        raise TransientError(
            f"the OAuth refresh of administration {administration_id} lost its lock; its "
            "result was not stored (retry)"
        )

    def _mark_revoked(self, administration_id: str, lock: redis.lock.Lock, held: Stored) -> None:
        """Record that Moneybird refused the grant, so nobody asks the token endpoint again."""
        revoked = Credential(
            access_token="",
            scopes=held.credential.scopes,
            kind="oauth",
            needs_reauth=f"invalid_grant at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        )
        marked = self.store.swap(lock, held, revoked)
        log.error(
            "oauth_grant_revoked",
            administration_id=administration_id,
            grant=held.credential.grant_id,
            recorded=marked,
        )


def _refuse_revoked(administration_id: str, credential: Credential | None) -> None:
    if credential is not None and credential.needs_reauth:
        raise ReauthorizationNeeded(
            f"the OAuth grant of administration {administration_id} needs re-authorisation "
            f"({credential.needs_reauth}); {REAUTHORIZE}"
        )
