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


def test_wheel_holds_every_module_config_and_script(tmp_path):
    """What `pip install .` (non-editable) installs: every package module, the profiles, the console scripts;
    nothing of the checkout (tests, bench, assets). Built with pip, no network (no build isolation)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    leftover = [REPO / "build"] if not (REPO / "build").exists() else []  # setuptools builds in the checkout
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                               "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    finally:
        for folder in leftover:
            shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("peo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("peo", "precompute", "app"):
        for module in (REPO / package).rglob("*.py"):
            assert str(module.relative_to(REPO)) in names, f"{module.relative_to(REPO)} missing from the wheel"
    for profile in (REPO / "precompute" / "configs").glob("*.yaml"):
        assert str(profile.relative_to(REPO)) in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "assets/", "scripts/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("peo =", "peo-precompute =", "peo-app ="):
        assert script in text


def test_the_space_app_file_launches_the_app_without_a_sys_path_edit():
    """A Space runs README's `app_file` as a script from the repository root: a root-level file, so Python
    itself puts the root on sys.path and nothing in the project edits it."""
    front_matter = (REPO / "README.md").read_text().split("---")[1]
    app_file = next(line.split(":", 1)[1].strip() for line in front_matter.splitlines()
                    if line.startswith("app_file:"))
    assert app_file == "space_app.py" and "/" not in app_file
    assert "from app.__main__ import main" in (REPO / app_file).read_text()
    for source in [*REPO.glob("*.py"), *(REPO / "app").glob("*.py"), *(REPO / "peo").rglob("*.py"),
                   *(REPO / "precompute").glob("*.py")]:
        assert "sys.path.insert" not in source.read_text() and "sys.path.append" not in source.read_text(), source
