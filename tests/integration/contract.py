"""Every answer the integration tests receive, checked against the API's
one description, docs/openapi.yaml.

harness.Client calls check() on each response: the route (path template and
method) must be documented, or the answer must be the documented 404 / 405;
the status must be one the operation lists; headers the document marks
required (X-Request-Id everywhere, Retry-After on 429/503) must be there and
match their schema; a JSON body must match the response's schema. A field
that drifts on either side fails the test that saw it.

The document is loaded and the validators compiled once per process.
"""
import json
import os
import re
import threading

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

_lock = threading.Lock()
_state = None


class ContractError(AssertionError):
    pass


def _load():
    global _state
    with _lock:
        if _state is not None:
            return _state
        with open(DOC_PATH, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        routes = []
        for tmpl, item in doc["paths"].items():
            parts = tmpl.strip("/").split("/") if tmpl != "/" else []
            regex = "^/" + "/".join(
                "[^/]+" if p.startswith("{") else re.escape(p)
                for p in parts) + "$"
            # Literal segments win over parameters (/v1/orders/batch
            # before /v1/orders/{id}), as the server's table does.
            n_params = sum(p.startswith("{") for p in parts)
            routes.append((n_params, tmpl, re.compile(regex), item))
        routes.sort(key=lambda r: (r[0], r[1]))
        _state = {"doc": doc, "routes": routes, "validators": {}}
        return _state


def _resolve(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def _validator(state, key, schema):
    v = state["validators"].get(key)
    if v is None:
        resolver = jsonschema.RefResolver("", state["doc"])
        v = jsonschema.Draft202012Validator(schema, resolver=resolver)
        state["validators"][key] = v
    return v


def _error_schema():
    return {"$ref": "#/components/schemas/Error"}


def check(method, path, status, headers, content):
    """Raises ContractError when the answer is not what the document says.
    path is the request path without the query; content the raw bytes."""
    state = _load()
    doc = state["doc"]
    method = method.lower()
    where = "%s %s -> %d" % (method.upper(), path, status)
    if "X-Request-Id" not in headers:
        raise ContractError("%s: no X-Request-Id header" % where)
    route = next((r for r in state["routes"] if r[2].match(path)), None)
    if method == "head":
        method = "get"
        content = b""
    op = route[3].get(method) if route else None
    if op is None:
        want = 404 if route is None else 405
        if status != want:
            raise ContractError("%s: %s, want %d" % (
                where, "no documented path" if route is None
                else "method not documented", want))
        schema, key = _error_schema(), ("error",)
        resp = {"content": {"application/json": {"schema": schema}}}
    else:
        resp = op["responses"].get(str(status))
        if resp is None:
            raise ContractError("%s: status %d is not documented for %s %s"
                                " (documented: %s)" % (
                                    where, status, method.upper(), route[1],
                                    ", ".join(sorted(op["responses"]))))
        resp = _resolve(doc, resp)
        key = (route[1], method, status)
    for name, h in (resp.get("headers") or {}).items():
        h = _resolve(doc, h)
        value = headers.get(name)
        if value is None:
            if h.get("required"):
                raise ContractError("%s: no %s header" % (where, name))
            continue
        hs = h.get("schema", {})
        inst = value
        if hs.get("type") == "integer":
            if not re.fullmatch(r"[0-9]+", value):
                raise ContractError("%s: %s: %r is not an integer" % (
                    where, name, value))
            inst = int(value)
        errs = list(_validator(state, key + ("h", name), hs)
                    .iter_errors(inst))
        if errs:
            raise ContractError("%s: header %s: %s" % (
                where, name, errs[0].message))
    media = resp.get("content")
    if not media:
        if content:
            raise ContractError("%s: a body where the document has none"
                                % where)
        return
    ctype = headers.get("Content-Type", "").split(";")[0].strip()
    spec = media.get(ctype)
    if spec is None and "*/*" not in media:
        raise ContractError("%s: Content-Type %r, documented: %s" % (
            where, ctype, ", ".join(media)))
    if ctype != "application/json" or spec is None:
        return
    try:
        body = json.loads(content)
    except ValueError as e:
        raise ContractError("%s: the body is not JSON: %s" % (where, e))
    errs = sorted(_validator(state, key + ("b",), spec["schema"])
                  .iter_errors(body), key=lambda e: list(e.path))
    if errs:
        e = errs[0]
        raise ContractError("%s: body at %s: %s" % (
            where, "/".join(str(p) for p in e.absolute_path) or "(root)",
            e.message[:300]))
