"""Every answer the suite gets from the API, checked against the server's own OpenAPI document.

The document is generated from the handlers' request and response types; checking each real
answer against it (status documented, JSON body valid against the documented schema) is what
keeps the two from drifting. A deviation fails the test that met it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import requests

# Answers that differ from their server's OpenAPI document; each fails the test that met it
# unless CHARGEOPS_OPENAPI_STRICT=0, which only collects them (listed at the end of the run).
DEVIATIONS: list[str] = []
STRICT = os.environ.get("CHARGEOPS_OPENAPI_STRICT", "1") != "0"


class Deviation(AssertionError):
    pass


class OpenApiCheck:
    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.components = doc.get("components", {})
        self.routes: list[tuple[str, re.Pattern, int, dict]] = []
        for path, ops in doc["paths"].items():
            params = path.count("{")
            pattern = re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$")
            for method, op in ops.items():
                self.routes.append((method.upper(), pattern, params, op))
        self._validators: dict[int, jsonschema.Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> dict | None:
        found = [(n, op) for m, p, n, op in self.routes if m == method.upper() and p.match(path)]
        # A literal segment beats a parameter (/cases/stats before /cases/{id}).
        return min(found, key=lambda f: f[0])[1] if found else None

    def validator(self, schema: dict) -> jsonschema.Draft202012Validator:
        v = self._validators.get(id(schema))
        if v is None:
            # The components sit beside the schema, so its "#/components/..." references resolve.
            v = jsonschema.Draft202012Validator({**schema, "components": self.components})
            self._validators[id(schema)] = v
        return v

    def problems(self, method: str, url: str, status: int, content_type: str, body: bytes) -> list[str]:
        path = urlsplit(url).path
        op = self.operation(method, path)
        if op is None:
            return []  # pages, assets, the charger socket: not part of the API
        responses = op.get("responses", {})
        answer = responses.get(str(status))
        if answer is None:
            return [f"{method} {path} answered {status}, which the document does not list "
                    f"(it lists {sorted(responses)})"]
        if not body or "application/json" not in content_type:
            return []
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return [f"{method} {path} {status} answered JSON the document gives no schema for"]
        try:
            value = json.loads(body)
        except ValueError:
            return [f"{method} {path} {status} answered invalid JSON"]
        errors = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.path))
        return [
            f"{method} {path} {status}: at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in errors[:5]
        ]


_documents: dict[str, OpenApiCheck | None] = {}
_lock = threading.Lock()


def install() -> None:
    """Checks every HTTP answer the suite receives from a chargeops server (any `requests` call,
    plain or through a session) against that server's own document, fetched once per server."""
    send = requests.Session.send
    if getattr(send, "_openapi_checked", False):
        return

    def document(base: str) -> OpenApiCheck | None:
        with _lock:
            if base in _documents:
                return _documents[base]
        doc = None
        try:
            r = send(requests.Session(), requests.Request("GET", base + "/api/v1/openapi.json").prepare(),
                     timeout=10)
            if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
                doc = OpenApiCheck(r.json())
        except (requests.RequestException, ValueError):
            return None  # not up (yet): asked again next time
        with _lock:
            _documents[base] = doc
        return doc

    def checked_send(self, request, **kwargs):
        r = send(self, request, **kwargs)
        parts = urlsplit(request.url)
        if parts.scheme != "http" or parts.path == "/api/v1/openapi.json":
            return r
        check = document(f"{parts.scheme}://{parts.netloc}")
        if check is None:
            return r
        streamed = kwargs.get("stream", False)
        problems = check.problems(
            request.method or "GET",
            request.url,
            r.status_code,
            r.headers.get("content-type", ""),
            b"" if streamed else r.content,
        )
        if problems:
            DEVIATIONS.extend(problems)
            if STRICT:
                raise Deviation("the answer differs from the OpenAPI document:\n" + "\n".join(problems))
        return r

    checked_send._openapi_checked = True
    requests.Session.send = checked_send

