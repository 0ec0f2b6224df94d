#!/usr/bin/python3
"""openapi.drift: the routes the server knows and the operations
docs/openapi.yaml describes are the same set.

The server's routes are read from the C source, src/http/api.c: every
{"TEMPLATE", "METHOD", handler, ...} line of the route table, plus the
embedded files' route (static_route, "/{asset}"), which also answers "/"
(index.html). A route added to the table without its description, or a
description left behind by a removed route, fails here.
"""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
ENTRY = re.compile(r'\{\s*"(/[^"]*)",\s*"([A-Z]+)",\s*api_\w+')


def server_routes(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    found = {(t, m.lower()) for t, m in ENTRY.findall(src)}
    if ("/{asset}", "get") in found:
        found.add(("/", "get"))
    return found


def documented(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return {(p, m) for p, item in doc["paths"].items() for m in item
            if m in ("get", "put", "post", "delete", "patch")}


def main():
    api_c = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "src", "http", "api.c")
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "docs", "openapi.yaml")
    routes, ops = server_routes(api_c), documented(doc)
    if len(routes) < 20:
        sys.exit("openapi.drift: found only %d routes in %s: the table's "
                 "format changed, fix this test's parser" % (len(routes),
                                                             api_c))
    missing = sorted(routes - ops)
    stale = sorted(ops - routes)
    for t, m in missing:
        print("openapi.drift: %s %s is a route but not in %s"
              % (m.upper(), t, doc))
    for t, m in stale:
        print("openapi.drift: %s %s is documented but no route"
              % (m.upper(), t))
    if missing or stale:
        sys.exit(1)
    print("openapi.drift: %d routes, all documented, nothing else"
          % len(routes))


if __name__ == "__main__":
    main()
