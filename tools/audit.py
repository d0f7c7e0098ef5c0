"""``make lint``'s dependency audit: pip-audit over the lock files (requirements/*.txt, hashed).

pip-audit asks a vulnerability service about each locked release (by default PyPI's JSON API,
``/pypi/<name>/<version>/json``). Where that service cannot be reached, or answers for no release
at all (a registry mirror that serves packages but not that API), nothing was audited: this says so
in one clear line and passes, so the build does not fail for the network's sake; set
``AUDIT_REQUIRED=1`` (CI with the service reachable) to make that a failure. A known vulnerability in
an audited release always fails.

Run: ``.venv/bin/python -m tools.audit``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements/base.txt", "requirements/dev.txt")


def run_pip_audit() -> subprocess.CompletedProcess[str]:
    pip_audit = Path(sys.executable).parent / "pip-audit"
    args = [
        str(pip_audit),
        "--disable-pip",
        "--require-hashes",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    for lock in LOCKS:
        args += ["-r", str(ROOT / lock)]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def not_audited(why: str) -> int:
    required = os.environ.get("AUDIT_REQUIRED", "") not in ("", "0")
    print(
        f"dependency audit: NOT AUDITED, {why}"
        + ("" if required else " (skipped; AUDIT_REQUIRED=1 fails here)")
    )
    return 1 if required else 0


def main() -> int:
    result = run_pip_audit()
    try:
        report = json.loads(result.stdout)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        last = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return not_audited(f"pip-audit could not reach its vulnerability service: {last}")
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = len(dependencies) - len(audited)
    if not audited:
        return not_audited(
            f"the vulnerability service (PyPI's JSON API) answered for none of the {skipped} locked "
            "releases: it is not reachable from this machine"
        )
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            print(f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    if vulnerable:
        print(f"dependency audit: {len(vulnerable)} locked release(s) with known vulnerabilities")
        return 1
    print(
        f"dependency audit: {len(audited)} locked releases, no known vulnerability"
        + (f" ({skipped} not known to the service)" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
