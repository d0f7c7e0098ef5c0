"""Catalog changes: the dry-run diff, then a run that writes only the difference."""

from __future__ import annotations

from provisioning.config import DEFAULT_PLANS_FILE
from provisioning.reconcile.diff import plan_diff
from provisioning.runs.jobs import provision
from provisioning.runs.service import create_run
from tests.provisioning.conftest import writes


def test_diff_then_update_archive_and_interval_change(session, settings, connect, control, tmp_path):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == "succeeded"
    assert plan_diff(session, settings, connected.owner.workspace_id) == []

    text = DEFAULT_PLANS_FILE.read_text()
    text = text.replace("amount = 2900", "amount = 3900")  # pro-monthly price
    text = text.replace(
        'id = "pro-yearly"\nname = "Pro (yearly)"', 'id = "pro-yearly"\nname = "Pro (weekly)"'
    )
    text = text.replace('interval = "year"', 'interval = "week"')
    free_start = text.index('[[plans]]\nid = "free"')
    text = text[:free_start] + text[text.index("[[plans]]", free_start + 5) :]  # drop the free plan
    catalog_file = tmp_path / "plans.toml"
    catalog_file.write_text(text)
    changed = settings.model_copy(update={"plans_file": catalog_file})

    control.delete("/_emulator/requests")
    lines = plan_diff(session, changed, connected.owner.workspace_id)
    assert any(line.startswith("update product 'pro-monthly': prices") for line in lines), lines
    assert any("create product 'pro-yearly'" in line for line in lines), lines
    assert any("'pro-yearly' (billing interval changed)" in line for line in lines), lines
    assert any("'free' (no longer in the catalog)" in line for line in lines), lines
    assert writes(control) == []  # a dry run reads only

    control.delete("/_emulator/requests")
    run = create_run(session, connected.integration, trigger="admin")
    session.commit()
    assert provision(run.id, changed)["status"] == "succeeded"
    methods = sorted((w["method"], w["path"].rsplit("/", 2)[0]) for w in writes(control))
    # 1 create (+ benefits), 1 price update, 2 archives: nothing else
    assert [m for m, _ in methods].count("PATCH") == 3
    assert [m for m, _ in methods].count("POST") == 2
    assert plan_diff(session, changed, connected.owner.workspace_id) == []
    session.expire_all()
    assert {m.plan_id for m in connected.integration.product_mappings} == {
        "pro-monthly",
        "pro-yearly",
        "usage",
    }
