"""The connect flow: begin (state + PKCE), complete (verify, exchange, introspect, store), choose an
organization, disconnect. Services flush; the web handler commits (or rolls back on ConnectError).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from provisioning.catalog import Catalog, load_catalog
from provisioning.config import EnvironmentNotServed, PolarEndpoints, PolarEnvironment, Settings
from provisioning.connect import repository
from provisioning.connect.models import PolarConnectAttempt
from provisioning.connect.state import ConnectState, StateError, decode_state, encode_state
from provisioning.connect.switch import retire_organization
from provisioning.db import utcnow
from provisioning.errors import ConnectPolarError
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import (
    SecretIntegrityError,
    access_token,
    get_integration,
    get_or_create_integration,
    store_tokens,
    vault_for,
)
from provisioning.integrations.tokens import current_refresh_token, lock_tokens_until_transaction_ends
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarOAuthError, ProvisioningError
from provisioning.polar.oauth import PolarOAuth, TokenSet, s256_challenge
from provisioning.runs.models import ProvisioningRun
from provisioning.runs.service import cancel_active_runs, start_run_for_new_grant
from provisioning.vault import SecretBindingError, SecretSlot, VaultError

log = logging.getLogger(__name__)
ATTEMPT_TTL = timedelta(minutes=10)


def verifier_slot(nonce: str) -> SecretSlot:
    """Where an attempt's PKCE verifier is stored (its primary key is the nonce)."""
    return SecretSlot(PolarConnectAttempt.__tablename__, "code_verifier", nonce)


UNAVAILABLE = (
    "Connecting Polar is not available right now: the platform is not fully configured. Contact support."
)


SUPERSEDED = (
    "You started connecting Polar again, in another tab or window, and that newer connection has "
    "already finished, so this older one was not used. Your billing page shows the connection in place."
)


class ConnectError(ConnectPolarError):
    """The callback cannot complete; the message is safe to show to the workspace owner."""


class SessionMismatch(ConnectError):
    """The state's attempt is not one this browser session has pending."""


class SupersededConnect(ConnectError):
    """An older connect attempt came back after a newer one of the same connection completed."""


@dataclass(frozen=True)
class ConnectStart:
    authorize_url: str
    nonce: str  # keep it in the browser session; complete_connect wants it back


def read_state(settings: Settings, state: str | None) -> ConnectState | None:
    """What a state says (expired or not), or None when it is not ours: the web layer drops exactly
    that attempt's nonce from the browser session once its callback has come back, and links back
    to the workspace's billing page. Verifying the callback is complete_connect's work."""
    if not state:
        return None
    try:
        return decode_state(settings.secret_key, state, now=0)
    except StateError:
        return None


def _endpoints(settings: Settings, environment: str | None) -> PolarEndpoints:
    try:
        return settings.polar(environment)
    except EnvironmentNotServed:
        raise ConnectError(f"This platform does not connect to Polar's {environment} environment") from None


def begin_connect(
    session: Session,
    settings: Settings,
    *,
    workspace_id: str,
    user_id: str,
    environment: str | None = None,
    catalog: Catalog | None = None,
) -> ConnectStart:
    """Start connecting the workspace to ``environment`` (default: POLAR_SERVER's)."""
    endpoints = _endpoints(settings, environment)
    if not endpoints.configured:
        log.error(
            "Connect Polar (%s) is unavailable: its OAuth client id or secret is not set",
            endpoints.environment.value,
        )
        raise ConnectError(UNAVAILABLE)
    try:
        vault = vault_for(settings)
    except VaultError:
        log.error("Connect Polar is unavailable: POLAR_TOKEN_ENCRYPTION_KEY is not set")
        raise ConnectError(UNAVAILABLE) from None
    catalog = catalog or load_catalog(settings.plans_file)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    expires = utcnow() + ATTEMPT_TTL
    repository.add(
        session,
        PolarConnectAttempt(
            nonce=nonce,
            workspace_id=workspace_id,
            user_id=user_id,
            environment=endpoints.environment,
            code_verifier=vault.encrypt(verifier_slot(nonce), verifier),
            expires_at=expires,
        ),
    )
    state = encode_state(
        settings.secret_key,
        ConnectState(
            workspace_id=workspace_id,
            user_id=user_id,
            environment=endpoints.environment.value,
            nonce=nonce,
            expires_at=int(expires.timestamp()),
        ),
    )
    url = PolarOAuth(endpoints).authorization_url(state, s256_challenge(verifier), catalog.required_scopes())
    return ConnectStart(authorize_url=url, nonce=nonce)


def complete_connect(
    session: Session,
    settings: Settings,
    *,
    state: str,
    code: str,
    user_id: str,
    browser_nonce: str | None = None,
    browser_nonces: Collection[str] = (),
    environment: str | None = None,
    catalog: Catalog | None = None,
    may_connect: Callable[[str], bool] | None = None,
    hold_switches: bool = False,
) -> PolarIntegration:
    """Verify the callback and store the connection; raises ConnectError with a message to show.

    With ``hold_switches``, a reconnect that would move the connection to another Polar account or
    organization stores nothing yet: the new grant waits (encrypted) on the attempt and
    :class:`SwitchPending` is raised, for the owner to confirm (:func:`confirm_switch`) or keep the
    current connection (:func:`cancel_switch`). Without it (the CLI, tests) the switch happens.

    ``environment`` is the one whose callback path Polar redirected to (default: POLAR_SERVER's):
    a state made for another environment is refused, so a code is only ever exchanged with the
    server that issued it.

    ``may_connect(workspace_id)`` re-checks, at callback time, that the user may still connect
    the workspace (an owner demoted during the consent must not finish the connection).

    ``browser_nonces`` are the attempts this browser session has pending (``browser_nonce``, one):
    the state's nonce must be one of them. Attempts are independent, except that an older attempt of
    the same workspace and environment is refused once a newer one has completed (the newer wins).

    The attempt is consumed before anything else and stays consumed if the caller commits after a
    ConnectError (everything else this call did is rolled back to a savepoint), so a replayed state
    fails either way; a code is single-use at Polar too.
    """
    try:
        payload = decode_state(settings.secret_key, state)
    except StateError as exc:
        if str(exc) == "expired":
            raise ConnectError(
                "The Polar authorization took too long and expired; click Connect Polar again"
            ) from None
        raise ConnectError(
            "The Polar authorization could not be verified; click Connect Polar again"
        ) from None
    pending = [n for n in (browser_nonce, *browser_nonces) if n]
    if not any(hmac.compare_digest(payload.nonce, n) for n in pending):
        raise SessionMismatch(
            "This Polar authorization was started in another browser session; click Connect Polar again"
        )
    if payload.user_id != user_id:
        raise ConnectError("This Polar authorization was started by another user; click Connect Polar again")
    expected = environment or settings.polar_server
    if payload.environment != expected or not settings.serves(payload.environment):
        raise ConnectError(
            "This Polar authorization was made for another Polar environment; click Connect Polar again"
        )
    if may_connect is not None and not may_connect(payload.workspace_id):
        raise ConnectError("Only the workspace's owners can connect Polar")

    attempt = repository.get_for_update(session, payload.nonce)
    if attempt is None or attempt.consumed_at is not None:
        raise ConnectError("This Polar authorization was already used; click Connect Polar again")
    if attempt.user_id != user_id or attempt.workspace_id != payload.workspace_id:
        raise ConnectError("This Polar authorization does not match your session; click Connect Polar again")
    attempt.consumed_at = utcnow()
    session.flush()
    if attempt.expires_at < utcnow():
        raise ConnectError("The Polar authorization took too long and expired; click Connect Polar again")
    if repository.newer_completed(session, attempt) is not None:
        raise SupersededConnect(SUPERSEDED)

    catalog = catalog or load_catalog(settings.plans_file)
    endpoints = settings.polar(payload.environment)
    oauth = PolarOAuth(endpoints)
    tokens: TokenSet | None = None
    nested = session.begin_nested()
    try:
        try:
            verifier = vault_for(settings).decrypt(verifier_slot(attempt.nonce), attempt.code_verifier)
        except SecretBindingError as exc:
            log.error("connect attempt of workspace %s: %s", attempt.workspace_id, exc)
            raise ConnectError(
                "This Polar authorization failed its integrity check; click Connect Polar again"
            ) from None
        try:
            tokens = oauth.exchange_code(code, verifier)
        except PolarOAuthError as exc:
            raise ConnectError(
                f"Polar did not accept the authorization: {_in_words(exc.error)}; click Connect Polar again"
            ) from None
        previous = _lock_existing_connection(session, settings, payload.workspace_id, endpoints.environment)
        grant = _inspect_grant(oauth, tokens, catalog)
        attempt.account_email = grant.email
        existing = get_integration(session, payload.workspace_id, endpoints.environment)
        if hold_switches and switch_of(existing, grant) is not None:
            attempt.pending_grant = vault_for(settings).encrypt(
                pending_grant_slot(attempt.nonce), _grant_to_json(grant)
            )
            session.flush()
            nested.commit()
            held = SwitchPending(payload.workspace_id, endpoints.environment, attempt.nonce)
        else:
            return _complete(
                session, nested, settings, grant, attempt, endpoints.environment, user_id, previous
            )
    except BaseException as exc:
        nested.rollback()
        if tokens is not None:
            _revoke_quietly(oauth, tokens)
        if isinstance(exc, ConnectError):
            raise
        if isinstance(exc, ProvisioningError):
            raise ConnectError(str(exc)) from None
        if isinstance(exc, PolarOAuthError):
            raise ConnectError(
                f"Polar refused the connection: {_in_words(exc.error)}; click Connect Polar again"
            ) from None
        raise
    raise held


@dataclass(frozen=True)
class Grant:
    """A new grant, inspected: its tokens, account and the organizations it reaches."""

    tokens: TokenSet
    scopes: frozenset[str]
    organization_ids: tuple[str, ...]
    subject: str | None
    email: str | None
    organizations: list[dict[str, Any]]


def _inspect_grant(oauth: PolarOAuth, tokens: TokenSet, catalog: Catalog) -> Grant:
    # Introspection, the organization list and the account each need only the token: one round
    # trip for all three.
    api = PolarApi(oauth.endpoints.api_url, tokens.access_token)
    with ThreadPoolExecutor(max_workers=2) as pool:
        orgs_future = pool.submit(_reachable_organizations, api)
        email_future = pool.submit(_account_email, api)
        intro = oauth.introspect(tokens.access_token)
        orgs = orgs_future.result()
        email = email_future.result()
    if not intro.active:
        raise ConnectError("Polar reports the new access token as inactive; click Connect Polar again")
    granted = set(intro.scopes) or set(tokens.scope.split())
    missing = [s for s in catalog.required_scopes() if s not in granted]
    if missing:
        raise ConnectError(
            "Polar did not grant the permissions billing setup needs ("
            + ", ".join(missing)
            + "); click Connect Polar again and allow them"
        )
    return Grant(tokens, frozenset(granted), tuple(intro.organization_ids), intro.subject, email, orgs)


def _account_email(api: PolarApi) -> str | None:
    """The grant's Polar account e-mail (the page names the connected account), or None."""
    oauth2 = api.sdk.oauth2

    def userinfo(*, request_access_token: str | None = None, request_timeout: Any = None) -> Any:
        # The raw JSON: the SDK's union type reads a user's answer as an organization's, dropping
        # its e-mail.
        request = oauth2.client.build_request(
            method="GET",
            url="/v1/oauth2/userinfo",
            path_params={},
            query_params={},
            request_timeout=request_timeout,
            request_access_token=request_access_token,
        )
        return oauth2.client.send_request(request).json()

    try:
        info = api.read(userinfo, action="read the connected Polar account", scope="openid")
    except Exception as exc:  # only shown on the page: never a reason to fail the connect
        log.warning("reading the Polar account failed: %s", type(exc).__name__)
        return None
    email = info.get("email") if isinstance(info, dict) else None
    return str(email) if email else None


def switch_of(existing: PolarIntegration | None, grant: Grant) -> dict[str, bool] | None:
    """Whether storing ``grant`` moves a live connection to another Polar account or organization:
    ``{"account": …, "organization": …}``, or None when it does not."""
    if existing is None or existing.status == IntegrationStatus.NOT_CONNECTED or not existing.access_token:
        return None
    account = bool(existing.polar_user_id and grant.subject and existing.polar_user_id != grant.subject)
    organization = bool(existing.polar_org_id) and all(
        o["id"] != existing.polar_org_id for o in grant.organizations
    )
    if not (account or organization):
        return None
    return {"account": account, "organization": organization}


def _complete(
    session: Session,
    nested: SessionTransaction,
    settings: Settings,
    grant: Grant,
    attempt: PolarConnectAttempt,
    environment: PolarEnvironment,
    user_id: str,
    previous: str | None,
) -> PolarIntegration:
    """Store the grant (switching if it must), mark the attempt completed, release the savepoint."""
    integration = _switch_and_store(
        session, settings, grant, attempt.workspace_id, environment, user_id, previous
    )
    attempt.completed_at = utcnow()
    session.flush()
    nested.commit()
    return integration


def _switch_and_store(
    session: Session,
    settings: Settings,
    grant: Grant,
    workspace_id: str,
    environment: PolarEnvironment,
    user_id: str,
    previous: str | None,
) -> PolarIntegration:
    """Store the grant; when it moves the connection to another organization, the old one is
    retired first (our endpoint there deleted with the old grant). The old grant is revoked once
    the new pair is committed, unless deleting the old endpoint is still pending (the worker
    retries it with the old grant, then revokes it)."""
    existing = get_integration(session, workspace_id, environment)
    change = switch_of(existing, grant)
    revoke_previous = True
    if existing is not None and change is not None and change["organization"]:
        revoke_previous = retire_organization(session, settings, existing, previous)
    integration = _store_connection(session, settings, grant, workspace_id, environment, user_id)
    if previous and previous != grant.tokens.refresh_token and revoke_previous:
        _revoke_after_commit(session, settings.polar(environment), previous)
    return integration


def _grant_to_json(grant: Grant) -> str:
    tokens = grant.tokens
    return json.dumps(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
            "scope": tokens.scope,
            "scopes": sorted(grant.scopes),
            "organization_ids": list(grant.organization_ids),
            "subject": grant.subject,
            "email": grant.email,
            "organizations": grant.organizations,
        }
    )


def grant_from_json(text: str) -> Grant:
    data = json.loads(text)
    expires = data.get("expires_at")
    return Grant(
        TokenSet(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            scope=data.get("scope") or "",
        ),
        frozenset(data.get("scopes") or ()),
        tuple(data.get("organization_ids") or ()),
        data.get("subject"),
        data.get("email"),
        list(data.get("organizations") or []),
    )


def pending_grant_slot(nonce: str) -> SecretSlot:
    """Where a held switch's new grant is stored (the attempt's primary key is the nonce)."""
    return SecretSlot(PolarConnectAttempt.__tablename__, "pending_grant", nonce)


class SwitchPending(ConnectPolarError):
    """The callback's grant would move the connection to another Polar account or organization:
    it waits on the attempt ``nonce`` for the owner to confirm or cancel."""

    def __init__(self, workspace_id: str, environment: PolarEnvironment, nonce: str) -> None:
        super().__init__("This reconnect would switch Polar account or organization: confirm it first")
        self.workspace_id = workspace_id
        self.environment = environment
        self.nonce = nonce


def _store_connection(
    session: Session,
    settings: Settings,
    grant: Grant,
    workspace_id: str,
    environment: PolarEnvironment,
    user_id: str,
) -> PolarIntegration:
    orgs = grant.organizations
    integration = get_or_create_integration(session, workspace_id, environment)
    integration.connected_by_user_id = user_id
    store_tokens(settings, integration, grant.tokens)
    integration.scopes = " ".join(sorted(grant.scopes))
    integration.granted_organization_ids = list(grant.organization_ids)
    integration.reachable_organizations = orgs
    integration.polar_user_id = grant.subject
    integration.last_error = None
    session.flush()

    if len(orgs) == 1:
        _set_organization(integration, orgs[0])
    elif len(orgs) > 1:
        current = next((o for o in orgs if o["id"] == integration.polar_org_id), None)
        if current is None:
            _forget_organization(integration)
            integration.status = IntegrationStatus.AWAITING_ORGANIZATION
            session.flush()
            return integration
        # Reconnecting to an organization we already provisioned: keep it.
        _set_organization(integration, current)
    else:
        # No organization yet: the run's first step creates one named after the workspace.
        _forget_organization(integration)
    integration.status = IntegrationStatus.PROVISIONING
    _create_first_run(session, integration, user_id)
    return integration


def _create_first_run(
    session: Session, integration: PolarIntegration, user_id: str | None
) -> ProvisioningRun:
    """The run a connect starts. Going live (a production connection never provisioned before,
    beside a provisioned sandbox one) provisions the catalog revision the sandbox has: what the
    owner tried in test mode is what goes live.

    One run per connection at a time: a run already queued is reused, one already running (with
    the grant or organization this connect replaced) is cancelled and replaced; see
    ``runs.service.start_run_for_new_grant``."""
    revision = None
    if integration.environment == PolarEnvironment.PRODUCTION and not integration.catalog_revision:
        sandbox = get_integration(session, integration.workspace_id, PolarEnvironment.SANDBOX)
        revision = sandbox.catalog_revision if sandbox is not None else None
    return start_run_for_new_grant(session, integration, user_id=user_id, catalog_revision=revision).run


def _reachable_organizations(api: PolarApi) -> list[dict[str, Any]]:
    return [
        {"id": o.id, "name": o.name, "slug": o.slug}
        for o in api.list_all(
            api.sdk.organizations.list, action="list your Polar organizations", scope="organizations:read"
        )
    ]


def _forget_organization(integration: PolarIntegration) -> None:
    """Drop the organization and everything we set up in it (endpoint, secret, mappings)."""
    integration.polar_org_id = integration.polar_org_name = integration.polar_org_slug = None
    integration.webhook_endpoint_id = None
    integration.webhook_secret = None
    integration.product_mappings.clear()
    integration.meter_mappings.clear()


def _set_organization(integration: PolarIntegration, org: dict[str, Any]) -> None:
    if integration.polar_org_id and integration.polar_org_id != org["id"]:
        _forget_organization(integration)
    integration.polar_org_id = org["id"]
    integration.polar_org_name = org.get("name")
    integration.polar_org_slug = org.get("slug")


def choose_organization(
    session: Session, integration: PolarIntegration, organization_id: str, user_id: str | None
) -> ProvisioningRun:
    """The owner picked one of the organizations the grant reaches; start provisioning it."""
    # Row lock first: of two submissions at once, the second waits, then sees the first's choice.
    session.refresh(integration, with_for_update=True)
    if integration.status != IntegrationStatus.AWAITING_ORGANIZATION:
        raise ConnectError("This workspace is not waiting for an organization choice")
    org = next((o for o in integration.reachable_organizations or [] if o.get("id") == organization_id), None)
    if org is None:
        raise ConnectError(
            "That organization is not reachable with this Polar connection; pick one from the list"
        )
    _set_organization(integration, org)
    integration.status = IntegrationStatus.PROVISIONING
    integration.last_error = None
    session.flush()
    return _create_first_run(session, integration, user_id)


def disconnect(
    session: Session,
    settings: Settings,
    workspace_id: str,
    *,
    environment: str | None = None,
    user_id: str | None = None,
) -> bool:
    """Revoke the grant at Polar (best effort), forget the tokens and the webhook secret, and cancel
    the integration's queued and running provisioning runs. Returns False if not connected.

    Holds the integration's token lock until the caller's transaction ends, so no refresh can read
    the pair being revoked or write a new one over the disconnect. A connection to an environment
    the deployment no longer serves is forgotten here without a call: its tokens go nowhere else.
    """
    integration = get_integration(session, workspace_id, environment)
    if integration is None:
        return False
    lock_tokens_until_transaction_ends(session, settings, integration.id)
    # Lock the row (integration before runs, as the provision job does) before the grant dies at
    # Polar: a run whose calls then fail waits here, and sees the disconnect rather than a failure.
    session.refresh(integration, with_for_update=True)
    # Under the lock: the pair as committed now (a refresh may have rotated it while we waited).
    token = _readable_refresh_token(session, settings, integration.id)
    served = settings.serves(integration.environment)
    if served:  # with the connection's own access token only: a moved one raises before any call
        _delete_webhook_endpoint(settings, integration)
    try:
        if token and served:
            # Revoking the refresh token revokes both halves at Polar.
            PolarOAuth(settings.polar(integration.environment)).revoke(token, "refresh_token")
    except Exception as exc:  # the owner must be able to disconnect even if Polar is down
        log.warning("revoking the Polar grant failed for workspace %s: %s", workspace_id, type(exc).__name__)
    integration.access_token = None
    integration.refresh_token = None
    integration.token_expires_at = None
    integration.scopes = None
    integration.webhook_secret = None
    integration.webhook_endpoint_id = None
    integration.status = IntegrationStatus.NOT_CONNECTED
    integration.last_error = None
    session.flush()
    cancelled = cancel_active_runs(
        session, integration.id, "Cancelled: Polar was disconnected from this workspace"
    )
    log.info(
        "workspace %s disconnected Polar (user %s); %d run(s) cancelled", workspace_id, user_id, cancelled
    )
    return True


def _delete_webhook_endpoint(settings: Settings, integration: PolarIntegration) -> None:
    """Stop Polar's deliveries to us (best effort, before the grant is revoked). Products stay:
    customers may hold subscriptions to them, and a reconnect finds them again."""
    if not (integration.webhook_endpoint_id and integration.access_token):
        return
    try:
        api = PolarApi(settings.polar(integration.environment).api_url, access_token(settings, integration))
        api.write(
            api.sdk.webhooks.delete_webhook_endpoint,
            integration.webhook_endpoint_id,
            action="delete the webhook endpoint",
            scope="webhooks:write",
        )
    except Exception as exc:  # the owner must be able to disconnect even if Polar is down
        log.warning(
            "deleting the webhook endpoint failed for integration %s: %s", integration.id, type(exc).__name__
        )


def _lock_existing_connection(
    session: Session, settings: Settings, workspace_id: str, environment: PolarEnvironment
) -> str | None:
    """On reconnect: take the token lock (held until the caller's transaction ends) and return the
    previous grant's refresh token as committed now, to revoke it once the new pair is stored."""
    existing = get_integration(session, workspace_id, environment)
    if existing is None:
        return None
    lock_tokens_until_transaction_ends(session, settings, existing.id)
    previous = _readable_refresh_token(session, settings, existing.id)
    session.refresh(existing)  # what _store_connection overwrites is the row as it is now
    return previous


def _readable_refresh_token(session: Session, settings: Settings, integration_id: str) -> str | None:
    """The committed refresh token, or None when it cannot be read (moved from another row, or no
    configured key): a token that is not this connection's own is never sent to Polar, not even
    to revoke it, and the owner can still disconnect or reconnect."""
    try:
        return current_refresh_token(session, settings, integration_id)
    except (SecretIntegrityError, VaultError) as exc:
        log.warning(
            "integration %s: its refresh token is unreadable (%s); not revoking it", integration_id, exc
        )
        return None


_REVOKE_KEY = "connect_polar_revoke_after_commit"


def _revoke_after_commit(session: Session, endpoints: PolarEndpoints, refresh_token_: str) -> None:
    session.info.setdefault(_REVOKE_KEY, []).append((endpoints, refresh_token_))
    if not event.contains(session, "after_commit", _revoke_pending):
        event.listen(session, "after_commit", _revoke_pending)
        event.listen(session, "after_soft_rollback", _drop_pending_revokes)


def _revoke_pending(session: Session) -> None:
    for endpoints, token in session.info.pop(_REVOKE_KEY, []):
        try:
            PolarOAuth(endpoints).revoke(token, "refresh_token")
        except Exception as exc:  # quietly: the new connection works either way
            log.warning("could not revoke the previous Polar grant: %s", type(exc).__name__)


def _drop_pending_revokes(session: Session, previous_transaction: Any) -> None:
    if getattr(previous_transaction, "parent", None) is None:
        session.info.pop(_REVOKE_KEY, None)


def _revoke_quietly(oauth: PolarOAuth, tokens: TokenSet) -> None:
    try:
        oauth.revoke(tokens.refresh_token or tokens.access_token)
    except Exception as exc:
        log.warning("could not revoke an unused Polar grant: %s", type(exc).__name__)


def purge_expired_attempts(session: Session, *, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete connect attempts that expired over ``older_than`` ago (the worker's sweeper calls it)."""
    return repository.purge_expired(session, older_than=older_than)


SWITCH_GONE = "This switch is no longer waiting for you; reconnect Polar from the billing page"


def pending_switch(
    session: Session, settings: Settings, nonces: Collection[str], workspace_id: str, environment: str
) -> dict[str, Any] | None:
    """The switch waiting for this browser's confirmation on the workspace's connection to
    ``environment`` (one of ``nonces``): what the connection is now, and what it would become."""
    for nonce in reversed(list(nonces)):
        attempt = session.get(PolarConnectAttempt, nonce)
        if (
            attempt is None
            or attempt.pending_grant is None
            or attempt.completed_at is not None
            or attempt.workspace_id != workspace_id
            or attempt.environment != environment
        ):
            continue
        try:
            grant = grant_from_json(
                vault_for(settings).decrypt(pending_grant_slot(nonce), attempt.pending_grant)
            )
        except (SecretBindingError, VaultError):
            continue
        integration = get_integration(session, workspace_id, environment)
        current = repository.completed_for(session, workspace_id, environment)
        return {
            "nonce": nonce,
            "change": switch_of(integration, grant) or {"account": False, "organization": False},
            "from": {
                "account_id": integration.polar_user_id if integration else None,
                "account_email": current.account_email if current else None,
                "organization": {
                    "id": integration.polar_org_id,
                    "name": integration.polar_org_name,
                    "slug": integration.polar_org_slug,
                }
                if integration and integration.polar_org_id
                else None,
            },
            "to": {
                "account_id": grant.subject,
                "account_email": grant.email,
                "organizations": grant.organizations,
            },
        }
    return None


def confirm_switch(
    session: Session,
    settings: Settings,
    *,
    nonce: str,
    user_id: str,
    may_connect: Callable[[str], bool] | None = None,
) -> PolarIntegration:
    """The owner confirmed a held switch: retire the old organization (our endpoint there deleted
    before the old grant is revoked) and store the new grant. Raises ConnectError (the caller
    commits: the held grant is forgotten either way)."""
    attempt = repository.get_for_update(session, nonce)
    if attempt is None or attempt.pending_grant is None or attempt.completed_at is not None:
        raise ConnectError(SWITCH_GONE)
    if attempt.user_id != user_id:
        raise ConnectError("This Polar authorization was started by another user; click Connect Polar again")
    endpoints = _endpoints(settings, attempt.environment)
    oauth = PolarOAuth(endpoints)
    try:
        grant = grant_from_json(vault_for(settings).decrypt(pending_grant_slot(nonce), attempt.pending_grant))
    except (SecretBindingError, VaultError):
        attempt.pending_grant = None
        session.flush()
        raise ConnectError(
            "This Polar authorization failed its integrity check; click Connect Polar again"
        ) from None
    attempt.pending_grant = None
    session.flush()
    if may_connect is not None and not may_connect(attempt.workspace_id):
        _revoke_quietly(oauth, grant.tokens)
        raise ConnectError("Only the workspace's owners can connect Polar")
    if (attempt.consumed_at or attempt.created_at) + ATTEMPT_TTL < utcnow():
        _revoke_quietly(oauth, grant.tokens)
        raise ConnectError("The Polar authorization took too long and expired; click Connect Polar again")
    if repository.newer_completed(session, attempt) is not None:
        _revoke_quietly(oauth, grant.tokens)
        raise SupersededConnect(SUPERSEDED)
    nested = session.begin_nested()
    try:
        previous = _lock_existing_connection(session, settings, attempt.workspace_id, endpoints.environment)
        return _complete(session, nested, settings, grant, attempt, endpoints.environment, user_id, previous)
    except BaseException as exc:
        nested.rollback()
        _revoke_quietly(oauth, grant.tokens)
        if isinstance(exc, ConnectError):
            raise
        if isinstance(exc, ProvisioningError):
            raise ConnectError(str(exc)) from None
        raise


def cancel_switch(session: Session, settings: Settings, *, nonce: str, user_id: str) -> bool:
    """The owner keeps the current connection: the held grant is revoked at Polar and forgotten."""
    attempt = repository.get_for_update(session, nonce)
    if attempt is None or attempt.pending_grant is None or attempt.user_id != user_id:
        return False
    try:
        grant = grant_from_json(vault_for(settings).decrypt(pending_grant_slot(nonce), attempt.pending_grant))
        _revoke_quietly(PolarOAuth(_endpoints(settings, attempt.environment)), grant.tokens)
    except (SecretBindingError, VaultError, ConnectError):
        pass
    attempt.pending_grant = None
    session.flush()
    return True


# Polar's OAuth error codes, in words an owner can act on (the code stays in the logs).
OAUTH_ERRORS_IN_WORDS = {
    "invalid_grant": "the authorization expired or was already used",
    "invalid_client": "this platform's Polar application was not recognised (contact support)",
    "unauthorized_client": "this platform may not connect right now (contact support)",
    "invalid_request": "the request was incomplete",
    "invalid_scope": "the permissions asked for were refused",
    "access_denied": "access was denied",
}


def _in_words(code: str) -> str:
    return OAUTH_ERRORS_IN_WORDS.get(code, "it answered with an error")
