"""The connect flow's moving parts, driven over HTTP: our app through the Flask test client,
the emulator's consent page through httpx, and the job through a real RQ worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask.testing import FlaskClient
from polar_emulator.config import DEMO_USER_EMAIL
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.background import BILLING_QUEUE
from provisioning.config import Settings
from provisioning.runs.queue import QUEUE_NAME
from tests.app.conftest import csrf_token


@dataclass
class Consent:
    """Polar's answer: where it sends the browser back (our callback path) and the query string."""

    query: str
    path: str = "/polar/callback"

    @property
    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query).items()}

    @property
    def callback_path(self) -> str:
        return f"{self.path}?{self.query}"


def start_connect(client: FlaskClient, workspace_id: str, environment: str | None = None) -> str:
    """Click Connect Polar (in ``environment``'s mode); return the authorize URL we are sent to."""
    token = csrf_token(client, f"/workspaces/{workspace_id}/polar")
    data = {"csrf_token": token, **({"environment": environment} if environment else {})}
    response = client.post(f"/workspaces/{workspace_id}/polar/connect", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def consent(
    authorize_url: str,
    *,
    user: str = DEMO_USER_EMAIL,
    action: str = "allow",
    organizations: tuple[str, ...] = (),
) -> Consent:
    """Open the emulator's consent page and submit it, as a person would (no browser)."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    data: dict[str, str | list[str]] = {"user": user, "action": action}
    if organizations:
        data["organizations"] = list(organizations)
    answer = httpx.post(authorize_url, data=data, follow_redirects=False)
    assert answer.status_code in (302, 303), answer.text
    location = urlsplit(answer.headers["location"])
    assert location.path.startswith("/polar/callback"), location
    return Consent(location.query, location.path)


def run_jobs(redis_url: str, settings: Settings) -> None:
    """Run every queued job with a real RQ worker, in burst mode, in this process."""
    connection = Redis.from_url(redis_url)
    queues = [
        Queue(name, connection=connection, serializer=JSONSerializer) for name in (BILLING_QUEUE, QUEUE_NAME)
    ]
    SimpleWorker(queues, connection=connection, serializer=JSONSerializer).work(burst=True)
    connection.close()


def status(client: FlaskClient, workspace_id: str) -> dict:
    response = client.get(f"/workspaces/{workspace_id}/polar/status")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def connect(settings: Settings, redis_url: str):
    """Click, consent and call back: returns the callback response."""

    def _connect(client: FlaskClient, workspace_id: str, **consent_args):
        answer = consent(start_connect(client, workspace_id), **consent_args)
        return client.get(answer.callback_path)

    return _connect


def connect_and_provision(client: FlaskClient, workspace_id: str, settings: Settings) -> None:
    """Connect Polar (test mode) as the signed-in owner and run the provisioning job to Ready."""
    answer = consent(start_connect(client, workspace_id))
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(settings.redis_url, settings)
    assert status(client, workspace_id)["status"] == "ready"


@pytest.fixture
def connected(owner_client: FlaskClient, workspace: Workspace) -> Workspace:
    """The owner's workspace, test mode connected, its provisioning run queued but not run."""
    answer = consent(start_connect(owner_client, workspace.id))
    assert owner_client.get(answer.callback_path).status_code == 303
    return workspace


@pytest.fixture
def ready(owner_client: FlaskClient, workspace: Workspace, settings: Settings) -> Workspace:
    """The owner's workspace, test mode connected and provisioned."""
    connect_and_provision(owner_client, workspace.id, settings)
    return workspace


MakeKey = Callable[..., str]


@pytest.fixture
def make_key(session: Session, settings: Settings) -> MakeKey:
    """A new API key of a workspace, made by the service (committed); returns the key itself."""

    def make(workspace_id: str, mode: KeyMode = KeyMode.TEST, name: str = "deploy", **kwargs) -> str:
        created = api_keys.create(
            session, settings, workspace_id=workspace_id, name=name, mode=mode, **kwargs
        )
        session.commit()
        return created.plaintext

    return make
