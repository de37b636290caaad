"""Run the sandbox partners until Ctrl-C or SIGTERM."""

import contextlib
import signal
from argparse import ArgumentParser
from types import FrameType
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sandbox.server import make_server


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    # Turn SIGTERM into Ctrl-C so both leave serve_forever through the same clean path.
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve the sandbox partners (payment, ERP, carrier, analytics) over HTTP."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        """Serve forever; stop cleanly on Ctrl-C or SIGTERM."""
        # Settings made by settings.configure() alone (the sandbox on its own) are not
        # the shop's: only the shop's production settings say PRODUCTION.
        if getattr(settings, "PRODUCTION", False):
            # It approves every card: a shop pointed at it ships unpaid orders.
            raise CommandError(
                "The sandbox does not run in production: it approves every payment. "
                "Set SHOPFLOW_ENV=development or test to run it."
            )
        server = make_server(host, port)
        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(f"sandbox partners on http://{host}:{server.server_port}")
        self.stdout.flush()
        with server, contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
