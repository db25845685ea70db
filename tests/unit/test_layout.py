"""The layout rule, checked: SQL lives in app/db, app/kie knows nothing of the rest, handlers are
in app/web, and the modules the port opens with import nothing slow."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from app.web.routes import ROUTES, resolve

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|pg_advisory)\b", re.I | re.S
)


def _modules(under: Path) -> list[Path]:
    return sorted(path for path in under.rglob("*.py") if "__pycache__" not in path.parts)


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_sql_statement_is_in_the_database_layer() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {text.strip()[:60]!r}"
        for path in _modules(APP)
        if APP / "db" not in path.parents
        for text in _strings(path)
        if _SQL.search(text)
    ]
    assert not offenders, "SQL belongs in app/db/<table>.py:\n" + "\n".join(offenders)


def _forbidden_imports(package: str, allowed: Callable[[str], bool]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(APP / package)
        for name in _imports(path)
        if name.startswith("app.") and not allowed(name)
    ]


def test_kie_knows_only_kie() -> None:
    allowed = ("app.kie", "app.states", "app.logs", "app.backoff", "app.redaction")
    offenders = _forbidden_imports("kie", lambda name: name.startswith(allowed))
    assert not offenders, "app/kie knows KIE's wire formats and nothing of the rest:\n" + "\n".join(offenders)


def test_the_database_layer_imports_no_feature() -> None:
    features = ("app.web", "app.callbacks", "app.wiring", "app.server", "app.kie")
    offenders = _forbidden_imports("db", lambda name: not name.startswith(features))
    assert not offenders, "\n".join(offenders)


def test_every_route_is_a_handler_in_app_web() -> None:
    for route in ROUTES:
        module, _, function = route.handler.partition(":")
        assert module.startswith("app.web."), route
        assert callable(resolve(route.handler)), route
        assert function, route
    paths = [(route.method, route.path) for route in ROUTES]
    assert len(paths) == len(set(paths)), "a route is declared twice"


def test_the_modules_the_port_opens_with_import_nothing_slow() -> None:
    # The port must open before the database driver, the KIE client or the composition root are
    # even imported (they are imported in a thread once it is open).
    code = (
        "import sys, app.server, app.web.application;"
        "slow = [m for m in ('asyncpg', 'app.wiring', 'app.kie.client', 'app.leader', 'app.db.database')"
        " if m in sys.modules];"
        "print(','.join(slow))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"imported before the port opens: {result.stdout.strip()}"
