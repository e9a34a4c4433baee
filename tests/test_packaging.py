"""The package's metadata agrees with what a Space installs, and its console scripts point at real mains."""

from __future__ import annotations

import importlib
import tomllib

from conftest import REPO


def pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_pyproject_pins_equal_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    assert pins(project["dependencies"]) == requirements
    assert all(version for version in requirements.values()), "every dependency is pinned"
    tests = pins((REPO / "requirements-test.txt").read_text().splitlines())
    assert pins(project["optional-dependencies"]["test"]) == tests


def test_console_scripts_name_callable_mains():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"peo", "peo-precompute", "peo-app"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
