"""`make bench`: every figure of the benchmarks issue in one run, each beside the
baseline it is compared with, measured in the same run because the machine is shared.

    python -m bench.run [--quick] [--only checkout,priority]

Each suite (bench/<name>.py) starts its own processes and databases and returns its
figures; this writes them all to bench/results/bench.json (with the machine and the
commit) beside each suite's own JSON and plots, and prints a summary.
"""

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SUITES = ("checkout", "throughput", "priority", "recovery")


def machine() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit or None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    args = parser.parse_args()
    names = [name for name in args.only.split(",") if name]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites: {', '.join(unknown)} (known: {', '.join(SUITES)})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": machine(), "quick": args.quick, "suites": {}}
    failed = []
    for name in names:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            figures = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        except Exception as exc:  # one suite's failure must not hide the others' figures
            failed.append(name)
            figures = {"error": f"{exc.__class__.__name__}: {exc}"}
            print(f"   FAILED: {figures['error']}", flush=True)
        report["suites"][name] = {"seconds": round(time.monotonic() - started, 1), **figures}
        (RESULTS / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"   {name}: {report['suites'][name]['seconds']} s", flush=True)
    print(f"results: {RESULTS / 'bench.json'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
