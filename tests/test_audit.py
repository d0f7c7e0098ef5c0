"""``make lint``'s dependency audit (tools/audit.py) on pip-audit's JSON: a known vulnerability
fails, an unreachable service says so and passes unless AUDIT_REQUIRED is set."""

from __future__ import annotations

import json
import subprocess

import pytest

from tools import audit


def answer(monkeypatch: pytest.MonkeyPatch, stdout: str, stderr: str = "", code: int = 0) -> None:
    done = subprocess.CompletedProcess(args=[], returncode=code, stdout=stdout, stderr=stderr)
    monkeypatch.setattr(audit, "run_pip_audit", lambda: done)


def report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    vuln = {"id": "PYSEC-0000-1", "fix_versions": ["2.0.1"], "aliases": [], "description": ""}
    answer(monkeypatch, report({"name": "flask", "version": "2.0.0", "vulns": [vuln]}), code=1)
    assert audit.main() == 1
    assert "flask 2.0.0: PYSEC-0000-1 (fixed in 2.0.1)" in capsys.readouterr().out


def test_no_vulnerability_passes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    answer(monkeypatch, report({"name": "flask", "version": "3.1.3", "vulns": []}))
    assert audit.main() == 0
    assert "1 locked releases, no known vulnerability" in capsys.readouterr().out


@pytest.mark.parametrize(
    "stdout, stderr",
    [
        ("", "requests.exceptions.ConnectionError: Max retries exceeded"),
        (report({"name": "flask", "version": "3.1.3", "skip_reason": "Dependency not found on PyPI"}), ""),
    ],
    ids=["unreachable", "answers-for-nothing"],
)
def test_an_unusable_service_says_so_and_passes_unless_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, stdout: str, stderr: str
) -> None:
    answer(monkeypatch, stdout, stderr, code=1)
    monkeypatch.delenv("AUDIT_REQUIRED", raising=False)
    assert audit.main() == 0
    assert "NOT AUDITED" in capsys.readouterr().out
    monkeypatch.setenv("AUDIT_REQUIRED", "1")
    assert audit.main() == 1
