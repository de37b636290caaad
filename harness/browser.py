"""The Chromium the browser tests drive: Debian's package, installed when missing."""

import os
import shutil
import subprocess
from pathlib import Path

INSTALL_HINT = (
    "the browser tests need Chromium and none was found. On Debian or Ubuntu: "
    "`sudo apt-get install chromium`; elsewhere install Chromium or Chrome and set "
    "CHROMIUM=/path/to/the/binary."
)


def chromium_find() -> str | None:
    """The browser binary: $CHROMIUM if set, else chromium on PATH."""
    given = os.environ.get("CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("chromium")


def chromium_ensure() -> str:
    """The browser's path; installs Debian's chromium with apt-get when we may."""
    found = chromium_find()
    if found:
        return found
    if os.environ.get("CHROMIUM") or not shutil.which("apt-get") or os.geteuid() != 0:
        raise SystemExit(f"[services] {INSTALL_HINT}")
    print("[services] Chromium: not installed; apt-get install chromium", flush=True)
    quiet = {
        "stdout": subprocess.DEVNULL,
        "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    }
    subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, **quiet)
    found = chromium_find()
    if not found:
        raise SystemExit(
            f"[services] apt-get installed chromium but it is not on PATH. {INSTALL_HINT}"
        )
    return found
