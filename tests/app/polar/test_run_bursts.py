"""One run per connection per burst: `flask provision` twice and a reconnect, at the same moment
(threads, real commits on PostgreSQL), make one run between them."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from app import create_app
from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.db import Database
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun, RunStatus
from tests.provisioning.conftest import consent
from tests.provisioning.live import live_connect


def test_two_cli_runs_and_a_reconnect_at_once_make_one_run(
    committing_database: Database, settings: Settings
) -> None:
    live = live_connect(committing_database, settings, "Burst")
    assert live.run_id is not None
    assert provision(live.run_id, settings)["status"] == "succeeded"
    app = create_app(settings, database=committing_database)
    with committing_database.transaction() as s:  # the reconnect, up to Polar's redirect back
        start = begin_connect(s, settings, workspace_id=live.workspace_id, user_id=live.user_id)
    code, state = consent(start.authorize_url)

    barrier = threading.Barrier(3)
    outputs: dict[str, Any] = {}

    def cli(name: str) -> None:
        barrier.wait()
        result = app.test_cli_runner().invoke(args=["provision", live.workspace_id])
        outputs[name] = (result.exit_code, result.output)

    def reconnect() -> None:
        barrier.wait()
        with committing_database.transaction() as s:
            complete_connect(
                s, settings, state=state, code=code, user_id=live.user_id, browser_nonce=start.nonce
            )
        outputs["reconnect"] = "done"

    threads = [
        threading.Thread(target=cli, args=("cli-1",)),
        threading.Thread(target=cli, args=("cli-2",)),
        threading.Thread(target=reconnect),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outputs.get("reconnect") == "done", outputs

    with committing_database.transaction() as s:
        runs = list(
            s.scalars(
                select(ProvisioningRun).where(
                    ProvisioningRun.integration_id == live.integration_id, ProvisioningRun.id != live.run_id
                )
            )
        )
        assert [r.status for r in runs] == [RunStatus.QUEUED], [(r.trigger, r.status, r.error) for r in runs]
        run_id = runs[0].id
        s.expunge_all()
    # Each CLI either started that run or was told one is under way (exit 1). Their texts are not
    # compared: CliRunner swaps sys.stdout for the whole process, so threads' outputs mix.
    codes = sorted(outputs[name][0] for name in ("cli-1", "cli-2"))
    assert codes in ([0, 1], [1, 1]), outputs
    assert runs[0].trigger == ("cli" if codes == [0, 1] else "connect")
    assert provision(run_id, settings)["status"] == "succeeded"
