"""Usage events: what ``POST /api/v1/usage`` accepts and stores, what ``GET /usage/{external_id}``
answers, and sending stored events to Polar (the ingest job's steps, in ``usage.tasks``).

A request's events are checked field by field (nothing is stored if one is wrong), then inserted
in the caller's transaction; the ingest job is nudged once it commits. Each event has an
``external_id`` (the tenant's, or one generated here) that is unique per connection: an event
sent again (a retried request) is reported as a duplicate and not stored again. Polar deduplicates
on the same id per organization (``ON CONFLICT DO NOTHING``), so a batch sent again after a crash,
or after Polar took it but its answer was lost, is counted once at Polar too.

Sending is background work (the rate budget's background lane): up to ``BATCH`` events per
``events.ingest`` call. A failure counts an attempt and retries with backoff (``next_attempt_at``);
after ``MAX_ATTEMPTS`` the events are marked failed, with their last error, and kept. Polar's rate
budget being used up defers them without counting an attempt. Nothing here commits.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from polar.v2026_10.errors import HTTPValidationError
from sqlalchemy import Row
from sqlalchemy.orm import Session

from provisioning import background
from provisioning.config import PolarEnvironment, Settings
from provisioning.db import iso_utc, utcnow
from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.tokens import polar_api
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarBusy, ProvisioningError
from provisioning.ratelimit import lanes
from provisioning.tenant import billing
from provisioning.tenant.billing import InvalidRequest, PermissionsUpgrade
from provisioning.tenant.service import NotReady, ready
from provisioning.usage import repository
from provisioning.usage.models import UsageEvent, UsageStatus

log = logging.getLogger(__name__)

INGEST_JOB = "provisioning.usage.tasks.ingest"
USAGE_SCOPES = ("events:write",)
MAX_EVENTS = 1000  # per request
BATCH = 1000  # per call to Polar's events.ingest
EVENT_FIELDS = frozenset({"name", "external_customer_id", "external_id", "timestamp", "metadata"})
BODY_FIELDS = frozenset({"events"})
MAX_NAME = 128  # Polar's limit on an event's name
MAX_ID = 256
# Clocks differ: a timestamp up to this far ahead of ours is taken as it is.
MAX_FUTURE = timedelta(minutes=5)
# Connections that hold a grant to their organization: usage is accepted (and sent) while a run
# is under way or after one failed, not only once ready.
ACCEPTING = (IntegrationStatus.PROVISIONING, IntegrationStatus.READY, IntegrationStatus.FAILED)
# A claimed batch is due again after this if its job never reports (killed, say): sent again then,
# which Polar's deduplication makes harmless.
CLAIM = timedelta(minutes=2)
MAX_ATTEMPTS = 12
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(hours=6)


def nudge_key(integration_id: str) -> str:
    return f"usage:{integration_id}"


# -- the request -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """One event of a request, checked; ``external_id`` None: one is generated when stored."""

    name: str
    external_customer_id: str
    external_id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, str | int | float | bool] | None = None


def _text(event: dict[str, Any], name: str, where: str, max_length: int) -> str:
    value = event[name]
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where}.{name} must be a non-empty string.", f"{where}.{name}")
    if len(value) > max_length:
        raise InvalidRequest(f"{where}.{name} must be at most {max_length} characters.", f"{where}.{name}")
    return value


def _timestamp(value: object, where: str, now: datetime) -> datetime:
    field_name = f"{where}.timestamp"
    wanted = f"{field_name} must be an ISO 8601 date and time with a time zone, e.g. 2026-12-02T10:45:00Z"
    if not isinstance(value, str):
        raise InvalidRequest(f"{wanted}.", field_name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{wanted} (not {value[:40]!r}).", field_name) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidRequest(f"{wanted} (this one has no time zone).", field_name)
    if parsed > now + MAX_FUTURE:
        raise InvalidRequest(
            f"{field_name} is in the future ({value}); usage is recorded when it happened.", field_name
        )
    return parsed


def _event(raw: object, index: int, now: datetime) -> NewEvent:
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object.", where)
    extra = sorted(set(raw) - EVENT_FIELDS)
    if extra:
        raise InvalidRequest(
            f"Unknown field: {where}.{extra[0]} (accepted: {', '.join(sorted(EVENT_FIELDS))}).",
            f"{where}.{extra[0]}",
        )
    for name in ("name", "external_customer_id"):
        if raw.get(name) is None:
            raise InvalidRequest(f"{where}.{name} is required.", f"{where}.{name}")
    external_id = raw.get("external_id")
    metadata = None
    if raw.get("metadata") is not None:
        try:
            metadata = billing._metadata(raw["metadata"])
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}.{exc}", f"{where}.{exc.field}") from None
    return NewEvent(
        name=_text(raw, "name", where, MAX_NAME),
        external_customer_id=_text(raw, "external_customer_id", where, MAX_ID),
        external_id=_text(raw, "external_id", where, MAX_ID) if external_id is not None else None,
        timestamp=_timestamp(raw["timestamp"], where, now) if raw.get("timestamp") is not None else None,
        metadata=metadata,
    )


def usage_request(body: object, *, now: datetime | None = None) -> list[NewEvent]:
    """The events of a ``POST /usage`` body, checked; :class:`InvalidRequest` naming the field."""
    now = now or utcnow()
    data = billing._object(body)
    billing._fields(data, BODY_FIELDS, ("events",))
    raw = data["events"]
    if not isinstance(raw, list):
        raise InvalidRequest("events must be an array of events.", "events")
    if not 1 <= len(raw) <= MAX_EVENTS:
        raise InvalidRequest(
            f"events must hold 1 to {MAX_EVENTS} events (this one has {len(raw)}); send more in "
            "further requests.",
            "events",
        )
    events = [_event(item, i, now) for i, item in enumerate(raw)]
    first: dict[str, int] = {}
    for i, event in enumerate(events):
        if event.external_id is None:
            continue
        if event.external_id in first:
            raise InvalidRequest(
                f"events[{i}].external_id repeats events[{first[event.external_id]}].external_id "
                f"({event.external_id!r}): each event needs an external_id of its own.",
                f"events[{i}].external_id",
            )
        first[event.external_id] = i
    return events


# -- storing ---------------------------------------------------------------------------------------


def usage_connection(
    session: Session, settings: Settings, integration: PolarIntegration | None, environment: PolarEnvironment
) -> PolarIntegration:
    """The connection a key's usage goes to (``integration``: the key's workspace's connection to
    ``environment``, None without one): it must exist and hold a grant to its organization (a run
    may be under way); :class:`NotReady` saying why not, or :class:`PermissionsUpgrade` when the
    grant lacks ``events:write``."""
    if not (
        integration is not None
        and integration.status in ACCEPTING
        and integration.polar_org_id
        and settings.serves(environment)
    ):
        integration = ready(session, settings, integration, environment)  # says why not
        if not integration.polar_org_id:
            raise NotReady("The connection has no Polar organization yet: try again in a minute.")
    missing = billing.missing_scopes(integration, USAGE_SCOPES)
    if missing:
        raise PermissionsUpgrade(missing)
    return integration


@dataclass(frozen=True)
class Recorded:
    accepted: int
    duplicates: int
    events: list[dict[str, str]]  # per event of the request, in its order: external_id, status

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "events": self.events}


def new_external_id() -> str:
    """An external id for an event sent without one (returned, so it can be looked up)."""
    return f"cp_evt_{uuid.uuid4().hex}"


def record(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    events: Sequence[NewEvent],
    *,
    api_key_id: str | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Store the events new to the connection (an external id it holds already is a duplicate,
    left as it is) and nudge the ingest job once the caller commits."""
    now = now or utcnow()
    external_ids = [e.external_id or new_external_id() for e in events]
    rows = [
        repository.NewRow(
            id=str(uuid.uuid4()),
            external_id=external_id,
            name=event.name,
            external_customer_id=event.external_customer_id,
            timestamp=event.timestamp or now,
            metadata=event.metadata,
        )
        for event, external_id in zip(events, external_ids, strict=True)
    ]
    inserted = repository.insert_new(session, integration.id, api_key_id, now, rows)
    answers = [
        {"external_id": x, "status": "accepted" if x in inserted else "duplicate"} for x in external_ids
    ]
    if inserted:
        background.nudge_after_commit(
            session, settings.redis_url, INGEST_JOB, nudge_key(integration.id), integration.id
        )
    return Recorded(len(inserted), len(external_ids) - len(inserted), answers)


# -- reading ---------------------------------------------------------------------------------------


def find(
    session: Session, workspace_id: str, environment: PolarEnvironment, external_id: str
) -> UsageEvent | None:
    """The event of the workspace's connection to ``environment`` with that external id."""
    integration = integrations.for_workspace(session, workspace_id, environment)
    if integration is None:
        return None
    return repository.find(session, integration.id, external_id)


def describe(event: UsageEvent) -> dict[str, Any]:
    """What ``GET /usage/{external_id}`` answers: the event and whether it reached Polar."""
    return {
        "external_id": event.external_id,
        "name": event.name,
        "external_customer_id": event.external_customer_id,
        "timestamp": iso_utc(event.timestamp),
        "metadata": event.event_metadata or {},
        "status": event.status.value,
        "created_at": iso_utc(event.created_at),
        "ingested_at": iso_utc(event.ingested_at),
        "attempts": event.attempts,
        "next_attempt_at": iso_utc(event.next_attempt_at) if event.status == UsageStatus.PENDING else None,
        "last_error": event.last_error,
    }


# -- sending to Polar (the ingest job's steps) -----------------------------------------------------


def claim(session: Session, integration_id: str, now: datetime | None = None) -> list[Row[Any]]:
    """The connection's next batch of due events, claimed for ``CLAIM``."""
    now = now or utcnow()
    return list(repository.claim_due(session, integration_id, now, now + CLAIM, BATCH))


@dataclass
class Sent:
    """What one batch came to; ``go_on``: the job may send the next batch now."""

    ingested: int = 0
    failed: int = 0
    retrying: int = 0
    deferred: int = 0
    calls: int = 0
    go_on: bool = True


@dataclass(frozen=True)
class _Rejected:
    """Polar's 422 for a batch (all or nothing): which events it named, and why."""

    events: dict[int, str]  # index in the batch -> Polar's message
    other: str | None  # an error not about one event (the organization, say): the batch as a whole


def _rejected(exc: HTTPValidationError) -> _Rejected:
    events: dict[int, str] = {}
    other: list[str] = []
    for item in exc.error.detail or []:
        loc = list(item.loc)
        where = ".".join(str(x) for x in loc if x != "body")
        index = loc[2] if len(loc) > 2 and loc[:2] == ["body", "events"] else None
        if isinstance(index, int) and "organization_id" not in loc[3:]:
            events.setdefault(index, f"Polar refused the event: {where}: {item.msg}")
        else:
            other.append(f"{where}: {item.msg}")
    return _Rejected(events, "Polar refused the batch: " + "; ".join(other[:3]) if other else None)


def _ingest_call(api: PolarApi) -> Any:
    """``events.ingest``, with Polar's 422 answered as a value (which events it refused) rather
    than raised: the client turns a raised 4xx into a message and loses the indexes."""
    ingest = api.sdk.events.ingest

    def call(**kwargs: Any) -> Any:
        try:
            return ingest(**kwargs)
        except HTTPValidationError as exc:
            return _rejected(exc)

    call.__qualname__ = "events.ingest"  # its metrics label
    return call


def _payload(integration: PolarIntegration, row: Row[Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": row.name,
        "external_customer_id": row.external_customer_id,
        "external_id": row.external_id,
        "timestamp": row.timestamp.isoformat(),
        # A grant may reach several organizations: Polar then needs to be told which.
        "organization_id": integration.polar_org_id,
    }
    if row.event_metadata:
        event["metadata"] = row.event_metadata
    return event


def retry_delay(attempts: int) -> timedelta:
    """After the ``attempts``-th failure: 5 s, 15 s, 45 s, … tripling, at most 6 hours."""
    return min(MAX_RETRY, FIRST_RETRY * 3 ** max(0, attempts - 1))


def _retry_or_fail(session: Session, rows: Sequence[Row[Any]], error: str, now: datetime, sent: Sent) -> None:
    """One more failed attempt for each row: due again after its backoff, or failed for good
    after ``MAX_ATTEMPTS``."""
    by_attempts: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        by_attempts[row.attempts + 1].append(row.id)
    for attempts, ids in by_attempts.items():
        if attempts >= MAX_ATTEMPTS:
            sent.failed += repository.mark_failed(
                session, ids, f"{error} (gave up after {attempts} attempts)"
            )
        else:
            repository.retry_later(session, ids, now + retry_delay(attempts), error)
            sent.retrying += len(ids)


def _stop(session: Session, integration_id: str, rows: Sequence[Row[Any]], error: str, now: datetime) -> Sent:
    """The connection cannot ingest now: the batch counts an attempt, and the connection's other
    due events wait as long as its first retry does (they are not each tried meanwhile)."""
    sent = Sent(go_on=False)
    _retry_or_fail(session, rows, error, now, sent)
    repository.defer_due(session, integration_id, now, now + retry_delay(1))
    log.warning("usage ingest for integration %s failed: %s", integration_id, error)
    return sent


def _cannot_ingest(settings: Settings, integration: PolarIntegration) -> str | None:
    if integration.status not in ACCEPTING or not integration.access_token:
        return (
            f"The connection is {integration.status.value.replace('_', ' ')}: usage waits until the "
            "workspace's owner connects Polar again"
        )
    if not integration.polar_org_id:
        return "The connection has no Polar organization yet"
    if not settings.serves(integration.environment):
        return f"This platform no longer serves Polar's {integration.environment} environment"
    missing = billing.missing_scopes(integration, USAGE_SCOPES)
    if missing:
        return (
            "The connection's grant lacks " + ", ".join(missing) + ": the workspace's owner reconnects Polar"
        )
    return None


def send(
    session: Session,
    settings: Settings,
    integration_id: str,
    rows: Sequence[Row[Any]],
    now: datetime | None = None,
) -> Sent:
    """Send a claimed batch to Polar in one ``events.ingest`` call and record what came of it."""
    now = now or utcnow()
    integration = integrations.get(session, integration_id)
    if integration is None:  # disconnected and deleted: its events went with it
        return Sent(go_on=False)
    why_not = _cannot_ingest(settings, integration)
    if why_not is not None:
        return _stop(session, integration_id, rows, why_not, now)
    events = [_payload(integration, row) for row in rows]
    api: PolarApi | None = None
    with lanes.lane(lanes.background(integration.workspace_id)):
        try:
            api = polar_api(session, settings, integration)
            answer = api.write(
                _ingest_call(api), action="ingest usage events", scope="events:write", events=events
            )
        except PolarBusy as exc:
            # Polar's rate budget is used up: not a failure, no attempt counted.
            at = now + timedelta(seconds=max(1.0, exc.retry_after))
            repository.defer(session, [r.id for r in rows], at)
            repository.defer_due(session, integration_id, now, at)
            log.info("usage ingest for integration %s deferred: %s", integration_id, exc)
            return Sent(deferred=len(rows), go_on=False, calls=api.writes if api else 0)
        except (ConnectPolarError, redis.exceptions.RedisError) as exc:
            error = str(exc) if isinstance(exc, ConnectPolarError) else f"Redis failed ({type(exc).__name__})"
            if isinstance(exc, ProvisioningError) and exc.needs_reconnect and not exc.retryable:
                error = f"{error} (the workspace's owner reconnects Polar)"
            stopped = _stop(session, integration_id, rows, error, now)
            stopped.calls = api.writes if api else 0
            return stopped
    sent = Sent(calls=api.writes)
    if isinstance(answer, _Rejected):
        refused = {rows[i].id: why for i, why in answer.events.items() if 0 <= i < len(rows)}
        if answer.other is not None or not refused:
            stopped = _stop(session, integration_id, rows, answer.other or "Polar refused the batch", now)
            stopped.calls = api.writes
            return stopped
        for row_id, why in refused.items():  # never accepted as they are: failed at once
            sent.failed += repository.mark_failed(session, [row_id], why)
        rest = [r.id for r in rows if r.id not in refused]
        repository.defer(session, rest, now)  # the others are due again now, for the next batch
        log.warning("Polar refused %d usage event(s) of integration %s", len(refused), integration_id)
        return sent
    sent.ingested = repository.mark_ingested(session, [r.id for r in rows], now)
    return sent
