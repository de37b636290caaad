"""The Procfile read as commands: each line's argv, and what each `celery worker` line
runs (its queues, concurrency and pool), so tests and benchmarks run what `make demo`
runs."""

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"


@dataclass(frozen=True)
class WorkerSpec:
    queues: tuple[str, ...]
    concurrency: int
    pool: str

    def argv(self) -> list[str]:
        """A `celery worker` command for this spec, written as a Procfile line would be."""
        return [
            "celery", "-A", "config", "worker", "-Q", ",".join(self.queues),
            "--pool", self.pool, "--concurrency", str(self.concurrency), "-l", "info",
        ]  # fmt: skip


def procfile_lines(
    *, env: Mapping[str, str] | None = None, procfile: Path = PROCFILE
) -> dict[str, list[str]]:
    """{process name: argv} for every line, its $VARIABLES expanded from env (a variable
    env does not hold is left as written)."""
    env = env or {}
    lines = {}
    for line in procfile.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), command)
        lines[name.strip()] = shlex.split(expanded)
    return lines


def is_worker(argv: list[str]) -> bool:
    return bool(argv) and argv[0] == "celery" and "worker" in argv


def worker_spec(argv: list[str]) -> WorkerSpec:
    """What a `celery ... worker` command runs: its queues, concurrency and pool."""
    concurrency = _option(argv, "-c", "--concurrency")
    return WorkerSpec(
        queues=tuple(_option(argv, "-Q", "--queues").split(",")),
        # Without the option celery starts one pool process per CPU.
        concurrency=int(concurrency) if concurrency else os.cpu_count(),
        pool=_option(argv, "-P", "--pool") or "prefork",
    )


def procfile_worker_names() -> list[str]:
    """The names of the Procfile's `celery worker` lines, in its order."""
    return [name for name, argv in procfile_lines().items() if is_worker(argv)]


def procfile_worker_specs() -> dict[str, WorkerSpec]:
    """{process name: spec} for every `celery worker` line of the Procfile."""
    return {name: worker_spec(argv) for name, argv in procfile_lines().items() if is_worker(argv)}


def option_drop(argv: list[str], *names: str) -> list[str]:
    """argv without the option (and its value) in any of its forms."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not _value_in(arg, names):
            kept.append(arg)
    return kept


def _option(argv: list[str], *names: str) -> str | None:
    """The value of the option in any of its forms: `-c 8`, `-c8`, `--concurrency=8`."""
    for n, arg in enumerate(argv):
        if arg in names:
            return argv[n + 1]
        value = _value_in(arg, names)
        if value is not None:
            return value
    return None


def _value_in(arg: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
            return arg[len(name) :]
    return None
