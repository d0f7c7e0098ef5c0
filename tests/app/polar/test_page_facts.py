"""What the billing page tells an owner: each plan's prices and billing interval from the catalog,
the webhook URL Polar delivers to, the organization (with its link at Polar), the account and the
environment."""

from __future__ import annotations

from flask.testing import FlaskClient
from polar_emulator.config import DEMO_USER_EMAIL

from app.accounts.models import Workspace
from provisioning.config import Settings
from tests.app.polar.conftest import consent, run_jobs, start_connect, status


def test_the_page_and_its_json_say_what_is_connected(
    owner_client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    owner_client.get(answer.callback_path)
    run_jobs(redis_url, settings)
    snapshot = status(owner_client, workspace.id)
    terms = {p["plan_id"]: (p["prices"], p["billing"]) for p in snapshot["products"]}
    assert terms == {
        "free": (["Free"], "monthly"),
        "pro-monthly": (["$29.00"], "monthly"),
        "pro-yearly": (["$290.00"], "yearly"),
        "usage": (["$9.00", "$0.0005 per unit of API calls"], "monthly"),
    }
    assert snapshot["account"]["email"] == DEMO_USER_EMAIL
    assert snapshot["webhook_url"].startswith(f"{settings.public_base_url}/polar/webhooks/")
    assert snapshot["organization_url"] == f"{settings.polar_web_url}/dashboard/demo-org"
    html = owner_client.get(f"/workspaces/{workspace.id}/polar").get_data(as_text=True)
    assert '<dd id="connection-environment">Test mode (Polar sandbox)</dd>' in html
    assert f'<code id="webhook-url">{snapshot["webhook_url"]}</code>' in html
    assert "Open Demo Org on Polar" in html
