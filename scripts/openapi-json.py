#!/usr/bin/python3
"""Writes src/http/static/openapi.json from docs/openapi.yaml.

docs/openapi.yaml is the one description of the API; the JSON copy is what
the daemon embeds and serves at /openapi.json (the container image's build
stage sees only src/, and a YAML parser at build time would be one more
build dependency for a file that changes with the API, not with the build).
The output is committed; the test openapi.validate fails when it is stale.

Usage: scripts/openapi-json.py [--check]
"""
import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "docs", "openapi.yaml")
OUT = os.path.join(ROOT, "src", "http", "static", "openapi.json")


def render():
    with open(SRC, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main():
    text = render()
    if sys.argv[1:] == ["--check"]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("openapi: %s is stale: run scripts/openapi-json.py"
                         % os.path.relpath(OUT, ROOT))
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
