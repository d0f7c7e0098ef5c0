"""The import-cycle check of ``make lint``: the platform has no cycle, and the check catches one,
even when it hides in an import inside a function."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tools.import_cycles import cycles, main, strongly_connected


def test_the_platform_has_no_import_cycle() -> None:
    assert cycles(["app", "provisioning"]) == []


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)


def test_a_cycle_through_a_function_level_import_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _package(
        tmp_path,
        "cyclic_example",
        {
            "steps": "from cyclic_example import queue\n",
            "queue": "def enqueue():\n    from cyclic_example import steps\n    return steps\n",
            "alone": "import cyclic_example.queue\n",
            "typed": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic_example import alone\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert cycles(["cyclic_example"]) == [["cyclic_example.queue", "cyclic_example.steps"]]
    assert main(["cyclic_example"]) == 1
    assert "cyclic_example.queue <-> cyclic_example.steps" in capsys.readouterr().out
    sys.modules.pop("cyclic_example", None)


def test_components() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
