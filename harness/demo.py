"""`make demo`: every Procfile process under supervisord, which restarts whatever dies.

    python -m harness.demo

The Procfile stays the one list of processes: this writes a supervisord configuration
from it (var/demo/supervisord.conf), starts the database and the broker first, migrates
and seeds, starts the rest, and prints where to click once /readyz answers 200.
supervisord's own log is the demo's output: each start, each unexpected exit and each
restart appears there; every process logs to var/demo/logs/<name>.log.
"""

import http.client
import os
import pwd
import secrets
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import httpx
from supervisor.xmlrpc import SupervisorTransport

from harness.postgres import postgres_answers
from harness.procfile import ROOT, procfile_lines
from harness.redis import redis_answers
from harness.services import DEMO_DATABASE_URL

DEMO_DIR = ROOT / "var" / "demo"
# Started first, stopped last; the rest wait until these answer and the schema is there.
SERVICES = ("postgres", "redis")
READY_TIMEOUT_S = 180


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def supervisord_conf(
    lines: dict[str, list[str]], *, env: dict[str, str], secret: str, workdir: Path
) -> str:
    """A supervisord configuration that runs each Procfile line as a restarted program,
    its socket, logs and pid file under workdir."""
    socket = workdir / "supervisor.sock"
    user = pwd.getpwuid(os.getuid()).pw_name
    environment = ",".join(
        f'{key}="{_escaped(value)}"'
        for key, value in env.items()
        if key in PASSED_ENV or key.startswith("RATE_LIMIT")
    )
    sections = [
        # Only this user, with this run's password, may drive it.
        f"[unix_http_server]\nfile={socket}\nchmod=0700\nusername={user}\npassword={secret}\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{socket}\nusername={user}\npassword={secret}\n",
        f"[supervisord]\nnodaemon=true\nloglevel=info\nuser={user}\n"
        f"logfile={workdir / 'supervisord.log'}\npidfile={workdir / 'supervisord.pid'}\n"
        f"childlogdir={workdir / 'logs'}\n",
    ]
    for name, argv in lines.items():
        sections.append(
            f"[program:{name}]\n"
            f"command={_escaped(shlex.join(argv))}\n"
            f"directory={ROOT}\n"
            # A service starts first and stops last (supervisord stops by priority, reversed).
            f"priority={100 if name in SERVICES else 500}\n"
            "autostart=false\n"
            "autorestart=true\n"
            # Counted as started after a second; a crash loop backs off and is retried.
            "startsecs=1\n"
            "startretries=100\n"
            # A worker's warm shutdown waits for its running tasks; its pool goes with it.
            "stopwaitsecs=30\n"
            "stopasgroup=true\n"
            "killasgroup=true\n"
            "redirect_stderr=true\n"
            f"stdout_logfile={workdir / 'logs' / f'{name}.log'}\n"
            "stdout_logfile_maxbytes=10MB\n"
            f"environment={environment}\n"
        )
    return "\n".join(sections)


# What the demo's processes need from the environment `make demo` runs in.
PASSED_ENV = (
    "PATH",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SHOPFLOW_REDIS_URL",
    "SHOPFLOW_ENV",
    "FLOWER_BASIC_AUTH",
    "SHOPFLOW_ADMIN_USER",
    "SHOPFLOW_ADMIN_PASSWORD",
    "SANDBOX_URL",
    "SANDBOX_WEBHOOK_URL",
    "SANDBOX_CARRIER_TRACKING",
    "DJANGO_SETTINGS_MODULE",
)


def _escaped(text: str) -> str:
    """supervisord reads its values through Python's %-interpolation."""
    return text.replace("%", "%%").replace('"', '\\"')


class Supervisor:
    """supervisord in the foreground (its log on our stdout), driven over its socket."""

    def __init__(
        self, lines: dict[str, list[str]], *, env: dict[str, str], workdir: Path, stdout=None
    ) -> None:
        self.workdir = workdir
        self.secret = secrets.token_urlsafe(16)
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        conf = workdir / "supervisord.conf"
        conf.write_text(supervisord_conf(lines, env=env, secret=self.secret, workdir=workdir))
        conf.chmod(0o600)  # it holds the socket's password
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            cwd=ROOT,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None,
        )
        self.wait(lambda: self.rpc.getState()["statename"] == "RUNNING", what="supervisord")

    @property
    def rpc(self):
        """A new connection each call: one that failed cannot be used again."""
        user = pwd.getpwuid(os.getuid()).pw_name
        socket = f"unix://{self.workdir / 'supervisor.sock'}"
        transport = SupervisorTransport(user, self.secret, socket)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def start(self, names: list[str]) -> None:
        for name in names:
            self.rpc.startProcess(name, False)

    def pid(self, name: str) -> int:
        """The pid of a running program (0 when it is not running)."""
        return self.rpc.getProcessInfo(name)["pid"]

    def stop(self) -> None:
        """Stop every program (by priority, services last), then supervisord."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait()

    def wait(self, ready, *, what: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ready() is true; supervisord exiting first is an error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"supervisord exited; see {self.workdir / 'supervisord.log'}")
            try:
                if ready():
                    return
            except (OSError, http.client.HTTPException, xmlrpc.client.Fault, httpx.HTTPError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"{what} not ready in {timeout}s; see {self.workdir / 'logs'}")


def banner(env: dict[str, str]) -> str:
    admin = f"{env.get('SHOPFLOW_ADMIN_USER', 'admin')} / {env.get('SHOPFLOW_ADMIN_PASSWORD', '')}"
    flower = env.get("FLOWER_BASIC_AUTH", "").replace(":", " / ")
    python = shlex.quote(sys.executable)
    return f"""
  Shop          http://127.0.0.1:8000/
  Admin         http://127.0.0.1:8000/admin/   ({admin})
  Flower        http://127.0.0.1:5555/         ({flower})
  Operations    http://127.0.0.1:8000/admin/operations/
  Metrics       curl -H 'Authorization: Bearer shopflow-metrics' http://127.0.0.1:8000/metrics
  Health        http://127.0.0.1:8000/healthz  http://127.0.0.1:8000/readyz
  Sandbox       http://127.0.0.1:8100/ledger
  Database      {env["DATABASE_URL"]}
  API           curl -X POST http://127.0.0.1:8000/api/v1/checkout \\
                  -H 'Content-Type: application/json' -d @docs/checkout-example.json
  Load          SHOPFLOW_ENV=development {python} manage.py place_orders --count 50 --concurrency 4
  Processes     {python} -m supervisor.supervisorctl -c {DEMO_DIR / "supervisord.conf"} status
  Logs          tail -f {DEMO_DIR / "logs"}/worker_high.log
  Kill a worker kill -9 <pid from `status`>; supervisord starts it again (see below)
  Stop          Ctrl-C
"""


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> None:
    env = {
        # Production is the settings' default: the demo asks for development.
        "SHOPFLOW_ENV": "development",
        "DATABASE_URL": DEMO_DATABASE_URL,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        # The load generator (place_orders) checks out from this machine's one address;
        # the limits per email and per recipient stay as in production.
        "RATE_LIMIT_CHECKOUT_ADDRESS": "100000/600",
        # The sandbox's carrier reports each parcel's journey to the demo's shop.
        "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8000",
        "SANDBOX_CARRIER_TRACKING": "1",
        **os.environ,
    }
    # Flower refuses to start without a login (config/flower.py); the banner shows it.
    if not env.get("FLOWER_BASIC_AUTH"):
        env["FLOWER_BASIC_AUTH"] = f"ops:{secrets.token_urlsafe(12)}"
    lines = procfile_lines(env=env)
    supervisor = Supervisor(lines, env=env, workdir=DEMO_DIR)
    try:
        services = [name for name in lines if name in SERVICES]
        supervisor.start(services)
        if env["DATABASE_URL"].startswith("postgres"):
            supervisor.wait(lambda: postgres_answers(env["DATABASE_URL"]), what="PostgreSQL")
        supervisor.wait(lambda: redis_answers(env["CELERY_BROKER_URL"]), what="Redis")
        manage("migrate", "--noinput", "-v", "0", env=env)
        manage("seed_demo", env=env)
        manage("setup_periodic_tasks", env=env)
        supervisor.start([name for name in lines if name not in SERVICES])
        readyz = "http://127.0.0.1:8000/readyz"
        supervisor.wait(lambda: httpx.get(readyz, timeout=2).status_code == 200, what="/readyz")
        print(banner(env), flush=True)
        supervisor.process.wait()
    except KeyboardInterrupt:
        say("stopping: each worker finishes its running tasks first")
        supervisor.process.wait()


if __name__ == "__main__":
    main()
