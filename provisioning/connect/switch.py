"""Moving a connection to another Polar organization: the old one is retired first.

Our webhook endpoint in the old organization is deleted with the old grant before that grant is
revoked. When the deletion fails, the switch records it with the old grant's refresh token
(encrypted) and the worker's sweeper retries (:func:`retry_cleanups`): refresh, delete, revoke.
The old webhook URL segment is retired, not reused: deliveries Polar still sends there are
acknowledged and ignored (:func:`retired_webhook_path`). The old organization and its products
stay on the page as "previous organization" (the products stay at Polar).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.connect import repository
from provisioning.connect.models import PolarConnectionSwitch, SwitchCleanup
from provisioning.db import utcnow
from provisioning.ids import new_id
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token, vault_for
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarOAuthError, ProvisioningError
from provisioning.polar.oauth import PolarOAuth
from provisioning.vault import SecretSlot

log = logging.getLogger(__name__)
# After this many failed attempts (about an hour at the sweeper's 30 s) the cleanup is abandoned:
# staff see it in the console, and the old grant stays unrevoked rather than being retried forever.
MAX_CLEANUP_ATTEMPTS = 120


def refresh_token_slot(switch_id: str) -> SecretSlot:
    return SecretSlot(PolarConnectionSwitch.__tablename__, "refresh_token", switch_id)


def retire_organization(
    session: Session, settings: Settings, integration: PolarIntegration, old_refresh_token: str | None
) -> bool:
    """Before ``integration`` moves to another organization: record the old one, delete our
    endpoint there with the old grant, and give the integration a new webhook URL segment.
    Returns whether the old grant may be revoked now (False: the deletion is pending, and the
    worker will revoke it once the endpoint is gone)."""
    previous = repository.completed_for(session, integration.workspace_id, integration.environment)
    switch = PolarConnectionSwitch(
        id=new_id(),
        integration_id=integration.id,
        environment=integration.environment,
        from_account_id=integration.polar_user_id,
        from_account_email=previous.account_email if previous is not None else None,
        from_organization={
            "id": integration.polar_org_id,
            "name": integration.polar_org_name,
            "slug": integration.polar_org_slug,
        },
        products=[
            {"plan_id": m.plan_id, "polar_product_id": m.polar_product_id}
            for m in integration.product_mappings
        ],
        webhook_path_token=integration.webhook_path_token,
        webhook_endpoint_id=integration.webhook_endpoint_id,
        cleanup=SwitchCleanup.DONE,
        cleanup_attempts=0,
        switched_at=utcnow(),
    )
    error = _delete_endpoint(settings, integration)
    if error is None:
        switch.cleaned_at = utcnow()
    elif old_refresh_token:
        switch.cleanup = SwitchCleanup.PENDING
        switch.cleanup_attempts = 1
        switch.cleanup_error = error
        switch.refresh_token = vault_for(settings).encrypt(refresh_token_slot(switch.id), old_refresh_token)
    else:
        switch.cleanup = SwitchCleanup.ABANDONED
        switch.cleanup_error = error
    repository.add_switch(session, switch)
    # New deliveries go to a new URL; the old one is retired (acknowledged and ignored).
    integration.webhook_path_token = new_id().replace("-", "")
    session.flush()
    log.info(
        "integration %s leaves organization %s (endpoint cleanup %s)",
        integration.id,
        integration.polar_org_id,
        switch.cleanup.value,
    )
    return error is None


def _delete_endpoint(settings: Settings, integration: PolarIntegration) -> str | None:
    """Delete our endpoint in the integration's organization with its current grant; None when it
    is gone (or there was none), else what went wrong (no token, never a secret)."""
    if not integration.webhook_endpoint_id:
        return None
    try:
        api = PolarApi(
            settings.polar(integration.environment).api_url,
            access_token(settings, integration),
            max_attempts=2,
        )
        _delete_with(api, integration.webhook_endpoint_id)
    except Exception as exc:
        log.warning(
            "deleting webhook endpoint of integration %s failed: %s", integration.id, type(exc).__name__
        )
        return f"deleting the webhook endpoint failed: {type(exc).__name__}"
    return None


def _delete_with(api: PolarApi, endpoint_id: str) -> None:
    try:
        api.write(
            api.sdk.webhooks.delete_webhook_endpoint,
            endpoint_id,
            action="delete the webhook endpoint of the previous organization",
            scope="webhooks:write",
        )
    except ProvisioningError as exc:
        if exc.status != 404:  # already gone: what we wanted
            raise


def retry_cleanups(session: Session, settings: Settings) -> int:
    """The sweeper's retry of pending endpoint deletions: refresh the old grant, delete the
    endpoint, revoke the grant. Returns how many finished (done or abandoned)."""
    finished = 0
    for switch in repository.pending_cleanups(session):
        switch.cleanup_attempts += 1
        outcome = _retry(settings, switch)
        if outcome is None:
            switch.cleanup, switch.cleaned_at, switch.cleanup_error = SwitchCleanup.DONE, utcnow(), None
        elif outcome == "abandon" or switch.cleanup_attempts >= MAX_CLEANUP_ATTEMPTS:
            switch.cleanup = SwitchCleanup.ABANDONED
        else:
            switch.cleanup_error = outcome
        if switch.cleanup != SwitchCleanup.PENDING:
            switch.refresh_token = None
            finished += 1
        session.flush()
    return finished


def _retry(settings: Settings, switch: PolarConnectionSwitch) -> str | None:
    """None when the endpoint is gone and the grant revoked; "abandon" when the old grant no longer
    works; else what went wrong, to try again."""
    if not settings.serves(switch.environment) or not switch.refresh_token:
        switch.cleanup_error = "the old grant is not available"
        return "abandon"
    oauth = PolarOAuth(settings.polar(switch.environment))
    vault = vault_for(settings)
    try:
        refresh = vault.decrypt(refresh_token_slot(switch.id), switch.refresh_token)
        tokens = oauth.refresh(refresh)
        if tokens.refresh_token:
            refresh = tokens.refresh_token
            switch.refresh_token = vault.encrypt(refresh_token_slot(switch.id), refresh)
        if switch.webhook_endpoint_id:
            _delete_with(
                PolarApi(settings.polar(switch.environment).api_url, tokens.access_token),
                switch.webhook_endpoint_id,
            )
        oauth.revoke(refresh, "refresh_token")
    except PolarOAuthError as exc:
        switch.cleanup_error = f"the old grant no longer works ({exc.error})"
        return "abandon"
    except Exception as exc:
        return f"deleting the webhook endpoint failed: {type(exc).__name__}"
    return None


def retired_webhook_path(session: Session, path_token: str) -> bool:
    """Whether ``path_token`` was a connection's webhook URL segment before it switched
    organization: deliveries there are acknowledged and ignored."""
    return repository.switch_by_path_token(session, path_token) is not None
