"""Flower, refusing to start without a login: python -m config.flower [flower options].

Flower reads FLOWER_BASIC_AUTH itself, and an empty one means "auth on, with an empty
credential" (`Authorization: Basic =` gets in). This checks it holds `user:password`
pairs (comma-separated) before Flower starts, then runs `celery -A config flower` in this
process with the credential left in the environment, never on a command line `ps` shows.
"""

import os
import re
import sys

CREDENTIAL = re.compile(r"[^:,\s]+:[^,\s]+(,[^:,\s]+:[^,\s]+)*")


def credential_problem(value: str | None) -> str | None:
    """Why value is no Flower login, or None when it is one."""
    if not value:
        return "FLOWER_BASIC_AUTH is not set: Flower would answer anyone."
    if not CREDENTIAL.fullmatch(value):
        return "FLOWER_BASIC_AUTH must be user:password (or several, comma-separated)."
    return None


def main(argv: list[str]) -> None:
    if problem := credential_problem(os.environ.get("FLOWER_BASIC_AUTH")):
        sys.exit(f"flower refuses to start: {problem}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.checks import refuse_unsafe_start

    refuse_unsafe_start("flower")
    command = [sys.executable, "-m", "celery", "-A", "config", "flower", *argv]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main(sys.argv[1:])
