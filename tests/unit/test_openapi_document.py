"""The OpenAPI document (app/web/openapi.py) is valid OpenAPI 3.1 and says exactly what the route
table serves; its HTML page shows every operation and schema. Served keyless, checked against the
running service and fuzzed in tests/service/test_openapi.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from app.states import State
from app.web.docs import render
from app.web.middleware import KEYLESS_PATHS
from app.web.openapi import DOCUMENT
from app.web.routes import ROUTES

# The route families the document must cover (every route of the table, today).
DOCUMENTED_PREFIXES = ("/api/", "/files/", "/health", "/callbacks/kie", "/telegram/webhook", "/metrics")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_REGEX_PARAMETER = re.compile(r"\{(\w+):[^}]*\}")


def _template(path: str) -> str:
    """aiohttp's ``/callbacks/kie/{tail:.*}`` as OpenAPI writes it: ``/callbacks/kie/{tail}``."""
    return _REGEX_PARAMETER.sub(r"{\1}", path)


def _documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in _METHODS
        if method in item
    }


def _routed() -> set[tuple[str, str]]:
    documented = (route for route in ROUTES if route.path.startswith(DOCUMENTED_PREFIXES))
    return {(route.method, _template(route.path)) for route in documented}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in DOCUMENT["paths"].items()
        for method in _METHODS
        if method in item
    ]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    errors = [f"{e.instance_path}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(DOCUMENT)]
    assert not errors, "\n".join(errors)


def test_every_route_is_documented_with_its_method_and_path_template() -> None:
    routed, documented = _routed(), _documented()
    assert all(route.path.startswith(DOCUMENTED_PREFIXES) for route in ROUTES), "a route family is new"
    undocumented = routed - documented
    assert not undocumented, f"routes missing from the OpenAPI document: {sorted(undocumented)}"
    unrouted = documented - routed
    assert not unrouted, f"documented operations no route serves: {sorted(unrouted)}"


def test_path_parameters_are_declared_exactly() -> None:
    for method, path, operation in _operations():
        declared = {
            _resolve(parameter)["name"]
            for parameter in operation.get("parameters", [])
            if _resolve(parameter)["in"] == "path"
        }
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)


def test_every_operation_has_an_id_a_tag_a_security_and_error_answers() -> None:
    ids = [operation["operationId"] for _, _, operation in _operations()]
    assert len(ids) == len(set(ids))
    tags = {tag["name"] for tag in DOCUMENT["tags"]}
    for method, path, operation in _operations():
        assert operation["tags"][0] in tags, (method, path)
        assert "security" in operation, (method, path)
        keyed = path.startswith("/api/") and path not in KEYLESS_PATHS
        assert (operation["security"] == [{"ApiKey": []}] or path == "/api/v1/ws") is keyed, (method, path)
        if keyed:
            assert "401" in operation["responses"] and "503" in operation["responses"], (method, path)
        if path.startswith("/api/"):
            # Every /api/ path refuses a NUL in any query parameter with a 422 naming it.
            assert "422" in operation["responses"], (method, path)


def test_the_generation_states_are_the_state_machines() -> None:
    state = DOCUMENT["components"]["schemas"]["Generation"]["properties"]["state"]
    assert state["enum"] == [s.value for s in State]


def test_every_ref_points_at_something() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DOCUMENT)
    assert refs
    for ref in refs:
        _resolve({"$ref": ref})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: set[str] = set()
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        href = values.get("href") or values.get("src") or ""
        if href.startswith("#"):
            self.links.add(href[1:])
        elif href and not href.startswith("/"):
            self.external.append(href)
        self.scripts += tag in ("script", "link", "iframe", "img")


def test_the_page_shows_every_operation_and_schema_without_scripts_or_outside_resources() -> None:
    page = render(DOCUMENT)
    collector = _Collector()
    collector.feed(page)
    assert collector.scripts == 0 and collector.external == []
    assert collector.links <= collector.ids, f"dangling links: {collector.links - collector.ids}"
    text = re.sub(r"<[^>]+>", " ", page)
    for method, path, operation in _operations():
        assert f"{method} {path}" in re.sub(r"\s+", " ", text), (method, path)
        for code in operation["responses"]:
            assert f"<strong>{code}</strong>" in page
    for name in DOCUMENT["components"]["schemas"]:
        assert f'id="schema-{name}"' in page


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
