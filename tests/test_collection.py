"""Every test folder is collected: a folder pytest never visits is a suite that passes
by not running (ops/tests/ once moved there and went unseen)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_packages_tests_folder_is_in_the_suites_testpaths():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = set(config["tool"]["pytest"]["ini_options"]["testpaths"])
    folders = {path.parent.name for path in ROOT.glob("*/tests") if path.is_dir()}
    folders.add("tests")  # the cross-app and system tests

    assert folders - testpaths == set()
    assert testpaths - folders == set()
