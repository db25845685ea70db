"""GET /api/docs: the OpenAPI document (:mod:`app.web.openapi`) as one plain HTML page.

Rendered here, on the server, once: every operation (method, path, security, parameters, request
body, responses) grouped by tag, then every schema, with ``$ref`` as links between them. No
JavaScript and nothing from a CDN, so it reads the same in any browser, offline, or with ``curl``;
the machine-readable document stays ``/api/v1/openapi.json``. Served without an API key, like the
document itself.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from app.web.openapi import DOCUMENT

_METHODS = ("get", "head", "post", "put", "patch", "delete")
_CODE = re.compile(r"`([^`]+)`")
_MAX_DEPTH = 6

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:0 1.5em 4em;color:#1d2330}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #dde;padding-bottom:.2em;margin-top:2em}
section.op{border:1px solid #dde;border-radius:6px;padding:.4em 1em 1em;margin:1em 0}
.method{display:inline-block;min-width:4.5em;font-weight:700;font-family:monospace;text-transform:uppercase}
.get{color:#1769aa}.post{color:#2e7d32}.head{color:#6a1b9a}
code,.path{font-family:ui-monospace,monospace;font-size:.92em}.path{font-weight:600}
table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border:1px solid #e3e3ea;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f5f5fa}.muted{color:#667}.req{color:#b71c1c}
nav ul{columns:2}
"""


def render(document: dict[str, Any]) -> str:
    """The HTML page of an OpenAPI document."""
    return _Page(document).html()


@functools.cache
def _page() -> bytes:
    return render(DOCUMENT).encode()


async def docs_page(request: web.Request) -> web.Response:
    """The rendered page of this service's document (rendered on first use, then kept)."""
    return web.Response(body=_page(), content_type="text/html", charset="utf-8")


def _text(value: object) -> str:
    """Escaped text in which `code` spans become <code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(str(value), quote=False))


def _anchor(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", "-".join(parts)).strip("-")


class _Page:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = document.get("components", {})

    # -- the page ------------------------------------------------------------------------------

    def html(self) -> str:
        info = self.document.get("info", {})
        title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{title}</h1>",
            f'<p class="muted">OpenAPI {html.escape(str(self.document.get("openapi", "")))} · '
            '<a href="/api/v1/openapi.json">the document as JSON</a></p>',
            f"<p>{_text(info.get('description', ''))}</p>",
            self._security_schemes(),
            self._contents(),
        ]
        for tag, operations in self._by_tag().items():
            parts.append(f'<h2 id="{_anchor("tag", tag)}">{html.escape(tag)}</h2>')
            parts.extend(self._operation(method, path, operation) for method, path, operation in operations)
        for name, webhook in self.document.get("webhooks", {}).items():
            parts.append(f'<h2 id="{_anchor("webhook", name)}">Webhook: {html.escape(name)}</h2>')
            parts.extend(
                self._operation(method, "(your webhook_url)", webhook[method])
                for method in _METHODS
                if method in webhook
            )
        parts.append('<h2 id="schemas">Schemas</h2>')
        for name, schema in self.components.get("schemas", {}).items():
            parts.append(
                f'<section class="op" id="{_anchor("schema", name)}"><h3>{html.escape(name)}</h3>'
                f"{self._schema(schema, 0)}</section>"
            )
        parts.append("</body></html>")
        return "\n".join(parts)

    def _by_tag(self) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
        groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
            tag["name"]: [] for tag in self.document.get("tags", [])
        }
        for path, item in self.document.get("paths", {}).items():
            for method in _METHODS:
                if method in item:
                    tag = (item[method].get("tags") or ["other"])[0]
                    groups.setdefault(tag, []).append((method, path, item[method]))
        return {tag: operations for tag, operations in groups.items() if operations}

    def _contents(self) -> str:
        items = [
            f'<li><a href="#{_anchor("tag", tag)}">{html.escape(tag)}</a>: '
            + ", ".join(
                f'<a href="#{_anchor(method, path)}"><code>{method.upper()} {html.escape(path)}</code></a>'
                for method, path, _ in operations
            )
            + "</li>"
            for tag, operations in self._by_tag().items()
        ]
        return f'<nav><h2>Endpoints</h2><ul>{"".join(items)}</ul><p><a href="#schemas">Schemas</a></p></nav>'

    def _security_schemes(self) -> str:
        schemes = self.components.get("securitySchemes", {})
        if not schemes:
            return ""
        rows = "".join(
            f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(str(scheme.get('type')))}"
            f" in {html.escape(str(scheme.get('in')))}: <code>{html.escape(str(scheme.get('name')))}</code>"
            f"</td><td>{_text(scheme.get('description', ''))}</td></tr>"
            for name, scheme in schemes.items()
        )
        return f"<h2>Authentication</h2><table><tr><th>Scheme</th><th>How</th><th></th></tr>{rows}</table>"

    # -- one operation -------------------------------------------------------------------------

    def _operation(self, method: str, path: str, operation: dict[str, Any]) -> str:
        parts = [
            f'<section class="op" id="{_anchor(method, path)}">',
            f'<h3><span class="method {method}">{method}</span> <span class="path">{html.escape(path)}</span>'
            f" — {_text(operation.get('summary', ''))}</h3>",
        ]
        if description := operation.get("description"):
            parts.append(f"<p>{_text(description)}</p>")
        if "security" in operation:
            parts.append(f"<p><strong>Authentication:</strong> {self._security(operation['security'])}</p>")
        parameters = [self._resolve(parameter) for parameter in operation.get("parameters", [])]
        if parameters:
            parts.append("<h4>Parameters</h4>" + self._parameters(parameters))
        if body := operation.get("requestBody"):
            body = self._resolve(body)
            required = " (required)" if body.get("required") else " (optional)"
            parts.append(f"<h4>Request body{required}</h4>{self._content(body.get('content', {}))}")
        parts.append("<h4>Responses</h4>" + self._responses(operation.get("responses", {})))
        for key, value in operation.items():
            if key.startswith("x-") and isinstance(value, dict):
                parts.append(f"<h4><code>{html.escape(key)}</code></h4>{self._schema(value, 0)}")
        parts.append("</section>")
        return "".join(parts)

    @staticmethod
    def _security(requirements: list[dict[str, list[str]]]) -> str:
        if not requirements:
            return "none"
        options = [
            " and ".join(f"<code>{html.escape(name)}</code>" for name in r) or "none" for r in requirements
        ]
        return " or ".join(options)

    def _parameters(self, parameters: Iterable[dict[str, Any]]) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(str(p.get('name')))}</code>"
            f"{' <span class=req>required</span>' if p.get('required') else ''}</td>"
            f"<td>{html.escape(str(p.get('in')))}</td><td>{self._schema(p.get('schema', {}), 1)}</td>"
            f"<td>{_text(p.get('description', ''))}</td></tr>"
            for p in parameters
        )
        return f"<table><tr><th>Name</th><th>In</th><th>Schema</th><th>Description</th></tr>{rows}</table>"

    def _responses(self, responses: dict[str, Any]) -> str:
        rows = []
        for code, response in responses.items():
            response = self._resolve(response)
            rows.append(
                f"<tr><td><strong>{html.escape(code)}</strong></td>"
                f"<td>{_text(response.get('description', ''))}"
                f"{self._content(response.get('content', {}))}</td></tr>"
            )
        return f"<table><tr><th>Status</th><th>Meaning and body</th></tr>{''.join(rows)}</table>"

    def _content(self, content: dict[str, Any]) -> str:
        return "".join(
            f"<p><code>{html.escape(media_type)}</code></p>{self._schema(media.get('schema', {}), 1)}"
            for media_type, media in content.items()
        )

    # -- schemas -------------------------------------------------------------------------------

    def _resolve(self, value: dict[str, Any]) -> dict[str, Any]:
        """A parameter, response or request body with its local ``$ref`` followed."""
        seen = 0
        while isinstance(value, dict) and "$ref" in value and seen < 5:
            node: Any = self.document
            for part in value["$ref"].lstrip("#/").split("/"):
                node = node[part]
            value, seen = node, seen + 1
        return value

    def _schema(self, schema: Any, depth: int) -> str:
        """A schema as HTML: a type line, and a property table for an object."""
        if not isinstance(schema, dict) or not schema:
            return '<span class="muted">any JSON value</span>'
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return f'<a href="#{_anchor("schema", name)}"><code>{html.escape(name)}</code></a>'
        parts = [self._type_line(schema)]
        if description := schema.get("description"):
            parts.append(f'<div class="muted">{_text(description)}</div>')
        for keyword, joiner in (("oneOf", "one of"), ("anyOf", "any of"), ("allOf", "all of")):
            if keyword in schema:
                items = "".join(f"<li>{self._schema(option, depth + 1)}</li>" for option in schema[keyword])
                parts.append(f"<div>{joiner}:<ul>{items}</ul></div>")
        if "items" in schema:
            parts.append(f"<div>items: {self._schema(schema['items'], depth + 1)}</div>")
        properties = schema.get("properties", {})
        if properties and depth < _MAX_DEPTH:
            required = set(schema.get("required", []))
            rows = "".join(
                f"<tr><td><code>{html.escape(name)}</code>"
                f"{' <span class=req>required</span>' if name in required else ''}</td>"
                f"<td>{self._schema(value, depth + 1)}</td></tr>"
                for name, value in properties.items()
            )
            parts.append(f"<table><tr><th>Property</th><th>Schema</th></tr>{rows}</table>")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            parts.append(f"<div>other properties: {self._schema(extra, depth + 1)}</div>")
        return "".join(parts)

    @staticmethod
    def _type_line(schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        words = [html.escape(" | ".join(kind) if isinstance(kind, list) else str(kind))] if kind else []
        if "format" in schema:
            words.append(html.escape(f"({schema['format']})"))
        if "const" in schema:
            words.append(f"= <code>{html.escape(json.dumps(schema['const']))}</code>")
        if "enum" in schema:
            values = ", ".join(f"<code>{html.escape(json.dumps(v))}</code>" for v in schema["enum"])
            words.append(f"one of {values}")
        for keyword in ("minimum", "maximum", "minLength", "maxLength", "pattern", "default"):
            if keyword in schema:
                words.append(f"{keyword} <code>{html.escape(json.dumps(schema[keyword]))}</code>")
        return f"<span>{' '.join(words)}</span>" if words else ""
