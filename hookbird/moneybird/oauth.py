"""OAuth2 for SaaS setups: one token pair per customer administration.

The authorization-code flow: send the customer to :meth:`OAuthApp.authorize_url`
(scopes chosen explicitly), receive ``?code=…`` on the redirect URI,
:func:`exchange` it for tokens, keep them in the
:class:`~hookbird.moneybird.credentials.CredentialStore`.

Tokens are refreshed when they are about to expire or when Moneybird answers 401.
With many worker processes, many of them notice at once; a Redis lock per
administration lets exactly one refresh while the others wait and then reuse the
token it stored (a refresh token can be spent only once, so two refreshes would
log the second one out).

Token sources (what the client asks for a bearer token) live here too:
:class:`StaticToken` for a personal token, :class:`StoredTokens` for the store.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx2
import redis

from hookbird.logs import add_known_secrets, get_logger
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore
from hookbird.moneybird.errors import MoneybirdError, TransientError, Unauthorized
from hookbird.settings import Settings

#: Every scope Moneybird offers; ask only for the ones the integration needs.
SCOPES = ("sales_invoices", "documents", "estimates", "bank", "time_entries", "settings")
DEFAULT_OAUTH_URL = "https://moneybird.com/oauth"
REFRESH_AHEAD = 60.0

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

    def authorize_url(self, state: str | None = None) -> str:
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scopes),
        }
        if state:
            params["state"] = state
        return f"{self.oauth_url}/authorize?{urlencode(params)}"

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


def _token_call(app: OAuthApp, http: httpx2.Client, form: dict[str, str]) -> Credential:
    path = "/oauth/token"
    try:
        response = http.post(f"{app.oauth_url}/token", data=form)
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


def exchange(app: OAuthApp, code: str, http: httpx2.Client) -> Credential:
    """Trade an authorization code for a token pair."""
    return _token_call(app, http, app.exchange_form(code))


def refresh(app: OAuthApp, refresh_token: str, http: httpx2.Client) -> Credential:
    """Trade a refresh token for a new pair (the old refresh token is spent)."""
    return _token_call(app, http, app.refresh_form(refresh_token))


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
        lock_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.app = app
        self.http = http or httpx2.Client(timeout=30.0)
        self.fallback = fallback
        self.lock_timeout = lock_timeout
        self.refreshes = 0  # refreshes this process made (tests, metrics)
        self._budget_keys: dict[str, str] = {}  # token → budget key, learnt in token_for
        if fallback:
            add_known_secrets([fallback])

    def token_for(self, administration_id: str | None) -> str:
        try:
            credential = self.store.get(administration_id) if administration_id else None
        except CredentialError as exc:  # the wrong key: no call can succeed until it is fixed
            raise Unauthorized(str(exc)) from None
        if credential is None:
            if self.fallback:
                return self.fallback
            raise Unauthorized(
                f"no Moneybird credentials for administration {administration_id}: connect it "
                "with `hookbird oauth url` + `hookbird oauth exchange CODE`, or set "
                "MONEYBIRD_API_TOKEN"
            )
        token = credential.access_token
        if administration_id and self.app and credential.expires_within(REFRESH_AHEAD):
            token = self._refresh(administration_id, token)
        if administration_id and credential.kind == "oauth":
            # An OAuth token changes at every refresh; its administration's budget does not.
            self._budget_keys[token] = f"administration:{administration_id}"
        return token

    def after_unauthorized(self, administration_id: str | None, stale: str) -> str | None:
        if not administration_id or self.app is None:
            return None
        credential = self.store.get(administration_id)
        if credential is None or credential.refresh_token is None:
            return None
        fresh = self._refresh(administration_id, stale)
        self._budget_keys[fresh] = f"administration:{administration_id}"
        return None if fresh == stale else fresh

    def budget_key(self, administration_id: str | None, token: str) -> str:
        """OAuth: the administration's budget; personal tokens: the token's (shared by all
        the administrations it is stored for, as Moneybird counts it)."""
        return self._budget_keys.get(token) or token_key(token)

    def _refresh(self, administration_id: str, stale: str) -> str:
        """Refresh once across all processes; everyone gets the token that refresh stored."""
        assert self.app is not None
        lock = self.store.redis.lock(
            f"hookbird:oauth:refresh:{administration_id}",
            timeout=self.lock_timeout,
            blocking_timeout=self.lock_timeout + 5,
        )
        if not lock.acquire():
            raise TransientError(f"could not get the OAuth refresh lock of {administration_id}")
        try:
            current = self.store.get(administration_id)
            if current is None or current.refresh_token is None:
                raise Unauthorized(f"administration {administration_id} has no refresh token")
            if current.access_token != stale and not current.expires_within(REFRESH_AHEAD):
                return current.access_token  # another process refreshed while we waited
            fresh = refresh(self.app, current.refresh_token, self.http)
            if fresh.refresh_token is None:
                fresh = Credential(
                    fresh.access_token,
                    current.refresh_token,
                    fresh.expires_at,
                    fresh.scopes or current.scopes,
                    fresh.kind,
                )
            self.store.put(administration_id, fresh)
            self.refreshes += 1
            log.info("oauth_token_refreshed", administration_id=administration_id)
            return fresh.access_token
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("oauth_refresh_lock_expired", administration_id=administration_id)
