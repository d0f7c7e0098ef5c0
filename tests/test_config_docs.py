"""The README's configuration table names exactly the environment variables the settings models read:
a setting without a row, or a row for a setting that is gone, fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from provisioning import config
from provisioning.config import SETTINGS_MODELS, EnvSettings, Settings

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| Name | Default | Meaning |"


def documented() -> set[str]:
    """The names in the first column of the table under ``## Configuration``. A name written as a
    tail (``_SECRET``, ``…_WEB_URL``) stands for each full name before it in the same cell with as
    many trailing words replaced: ``POLAR_SANDBOX_OAUTH_CLIENT_ID``, ``_SECRET`` names
    ``POLAR_SANDBOX_OAUTH_CLIENT_SECRET``."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows and rows[0] == HEADER, rows[:1]
    names: set[str] = set()
    for row in rows[2:]:  # after the header and its |---| line
        full: list[str] = []
        for name in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if name.startswith(("_", "…_")):
                words = name.lstrip("…_").split("_")
                names |= {"_".join(base.split("_")[: -len(words)] + words) for base in full}
            else:
                full.append(name)
                names.add(name)
    return names


def read() -> set[str]:
    return {variable for model in SETTINGS_MODELS for variable in model.variables().values()}


def _subclasses(cls: type[EnvSettings]) -> Iterator[type[EnvSettings]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_readme_documents_every_variable_the_settings_read_and_no_other() -> None:
    documented_names, read_names = documented(), read()

    assert not read_names - documented_names, f"read but not in README.md: {read_names - documented_names}"
    assert not documented_names - read_names, (
        f"in README.md but read by no setting: {documented_names - read_names}"
    )


def test_the_shorthand_rows_expand_to_full_names() -> None:
    names = documented()

    assert {"POLAR_SANDBOX_OAUTH_CLIENT_SECRET", "POLAR_SANDBOX_OAUTH_REDIRECT_URI"} <= names
    assert {"POLAR_SANDBOX_WEB_URL", "POLAR_PRODUCTION_WEB_URL", "GUNICORN_KEEPALIVE"} <= names


def test_every_settings_model_is_listed_and_each_field_names_its_variable() -> None:
    leaves = {
        m for m in _subclasses(EnvSettings) if m.__module__ == config.__name__ and not m.__subclasses__()
    }
    assert leaves == set(SETTINGS_MODELS)
    for model in SETTINGS_MODELS:
        unnamed = set(model.model_fields) - set(model.variables())
        # other_polar_environments is built from the POLAR_SANDBOX_* / POLAR_PRODUCTION_* models
        assert unnamed == ({"other_polar_environments"} if model is Settings else set()), model
