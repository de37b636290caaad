"""Dependencies point one way: every project module's imports, read from its source,
against the allowed graph written here.

    wiring (config/__init__, config.urls, config.celery, config.wsgi, manage.py)
                   mounts the apps
    ops            reads everyone; imported by nobody
    shop           → orders, notifications, bulkjobs, partners, engine, kit, safefetch
    webhooks       → orders, notifications, engine, kit   (partners' events: the inbox)
    fulfillment    → orders, notifications, partners, engine, kit
    orders         → notifications, bulkjobs, partners, engine, kit
    notifications  → engine, kit           (the outbox and ops incidents: no domain)
    bulkjobs       → engine, kit           (one lifecycle for bulk jobs: no domain)
    partners       → engine, kit           (the four partner clients: model-free)
    engine         → kit                   (the durable step engine: no domain)
    kit            → nothing               (model-free helpers)
    safefetch      → nothing               (the one fetcher of URLs users give us)
    config         → nothing               (settings, queues and routes, beat schedule)

Every package may also import `config`'s declarations. Tests, the harness and the
benchmarks stand outside the product and may import any of it; nothing in the product
imports them. Function-level imports count like the others, and no two packages may
import each other, whatever the table says.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = {
    "ops",
    "bulkjobs",
    "shop",
    "fulfillment",
    "notifications",
    "orders",
    "partners",
    "engine",
    "kit",
    "safefetch",
    "webhooks",
    "config",
    "sandbox",
}
OUTSIDE = {"tests", "harness", "bench", "conftest"}
# config/__init__.py loads the Celery app, as Django and Celery ask.
WIRING = {"config.urls", "config.celery", "config.wsgi", "manage"}
ALLOWED: dict[str, set[str]] = {
    "wiring": PRODUCT - {"sandbox"},
    "ops": PRODUCT - {"ops", "sandbox", "wiring"},
    "shop": {"orders", "notifications", "bulkjobs", "partners", "engine", "kit", "safefetch"},
    "webhooks": {"orders", "notifications", "engine", "kit"},
    "fulfillment": {"orders", "notifications", "partners", "engine", "kit"},
    "orders": {"notifications", "bulkjobs", "partners", "engine", "kit"},
    "notifications": {"engine", "kit"},
    "bulkjobs": {"engine", "kit"},
    "partners": {"engine", "kit"},
    "engine": {"kit"},
    "kit": set(),
    "safefetch": set(),  # the one fetcher of user-given URLs: no domain, no helpers
    "config": set(),
    "sandbox": set(),  # the fake partners: a service of its own
}
for node, allowed in ALLOWED.items():
    if node != "config":
        allowed.add("config")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def node_of(module: str) -> str:
    """The package a module belongs to in the graph; wiring modules are a node of their own."""
    if module == "config" or any(module == w or module.startswith(w + ".") for w in WIRING):
        return "wiring"
    return module.split(".")[0]


def imports_of(source: str, *, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the source, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            # `from pkg import name`: name may be a module of pkg, so name it in full.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_every_top_level_package_is_a_node_of_the_graph():
    """A package the graph does not know would escape the check."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}

    assert packages - PRODUCT - OUTSIDE == set()


def product_files(root: Path) -> list[Path]:
    files = [root / "manage.py"] if (root / "manage.py").exists() else []
    for package in sorted(PRODUCT):
        files += sorted((root / package).rglob("*.py"))
    return [f for f in files if "tests" not in f.relative_to(root).parts]


def arrows(root: Path) -> list[tuple[str, str, str]]:
    """(where, from node, to node) for every import between two nodes of the product."""
    found: dict[tuple[Path, int, str], tuple[str, str, str]] = {}
    for path in product_files(root):
        module = module_name(path, root)
        source_node = node_of(module)
        for line, imported in imports_of(
            path.read_text(), module=module, is_package=path.name == "__init__.py"
        ):
            top = imported.split(".")[0]
            if top in OUTSIDE:
                target = top
            elif top in PRODUCT:
                target = node_of(imported)
            else:
                continue
            if target != source_node:
                # One arrow per import line and target, named by its first module.
                where = f"{path.relative_to(root)}:{line} ({imported})"
                found.setdefault((path, line, target), (where, source_node, target))
    return list(found.values())


def violations(root: Path) -> list[str]:
    problems = []
    edges: dict[tuple[str, str], str] = {}
    for where, source, target in arrows(root):
        edges.setdefault((source, target), where)
        if target not in ALLOWED.get(source, set()):
            problems.append(f"{where}: {source} → {target} is not allowed")
    for (source, target), where in sorted(edges.items()):
        if (target, source) in edges and source < target:
            problems.append(f"cycle {source} ⇄ {target}: {where} and {edges[(target, source)]}")
    return problems


def module_cycles(root: Path) -> list[list[str]]:
    """Groups of product modules that import each other, directly or round a loop
    (a function-level import that keeps a cycle apart at import time is one too)."""
    files = product_files(root)
    names = {module_name(path, root) for path in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        module = module_name(path, root)
        graph[module] = set()
        for _, imported in imports_of(
            path.read_text(), module=module, is_package=path.name == "__init__.py"
        ):
            while imported and imported not in names:  # pkg.module.name -> pkg.module
                imported = imported.rpartition(".")[0]
            if imported and imported != module and not module.startswith(imported + "."):
                graph[module].add(imported)
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        cycles.append(sorted(group))
    return cycles


def test_no_module_imports_itself_round_a_loop():
    assert module_cycles(ROOT) == []


def test_cycle_check_catches_a_cycle_hidden_by_a_function_level_import(tmp_path):
    root = _plant(
        tmp_path,
        {
            "orders/__init__.py": "",
            "orders/tasks.py": "from orders.services.exports import run\n",
            "orders/services/__init__.py": "",
            "orders/services/exports.py": "def run():\n    from orders.tasks import export\n",
        },
    )
    assert module_cycles(root) == [["orders.services.exports", "orders.tasks"]]


def test_imports_follow_the_allowed_graph():
    assert violations(ROOT) == []


def test_the_allowed_graph_has_no_cycle():
    # A table that allows a cycle would let one through.
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"cycle in ALLOWED: {' → '.join((*path, node))}"
        if node in done:
            return
        for target in ALLOWED.get(node, ()):
            visit(target, (*path, node))
        done.add(node)

    for node in ALLOWED:
        visit(node, ())


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_catches_a_planted_backwards_import(tmp_path):
    root = _plant(
        tmp_path,
        {
            "engine/__init__.py": "",
            "engine/runner.py": "def run():\n    from orders.models import Order\n",
            "orders/__init__.py": "",
            "orders/models.py": "from engine.runner import run\n",
        },
    )
    assert violations(root) == [
        "engine/runner.py:2 (orders.models.Order): engine → orders is not allowed",
        "cycle engine ⇄ orders: engine/runner.py:2 (orders.models.Order) and "
        "orders/models.py:1 (engine.runner.run)",
    ]


def test_checker_catches_a_relative_import_of_a_test_helper(tmp_path):
    root = _plant(
        tmp_path,
        {
            "kit/__init__.py": "from . import redis\nfrom ops import widgets\n",
            "kit/redis.py": "",
            "ops/__init__.py": "",
            "ops/widgets.py": "from tests import helpers\n",
        },
    )
    assert violations(root) == [
        "kit/__init__.py:2 (ops.widgets): kit → ops is not allowed",
        "ops/widgets.py:1 (tests.helpers): ops → tests is not allowed",
    ]
