#!/usr/bin/python3
"""deploy.k8s_schema: every Kubernetes object orderd ships, checked against
Kubernetes' own schemas offline (npm kubernetes-models, tests/deploy/
validate.mjs), beside the policy checks of test_deploy.py.

Checked: every object of every YAML file in deploy/kubernetes/base
(kustomization.yaml is kustomize's, not a Kubernetes object, and is
skipped by name), and the example overlay rendered the way kustomize would
for what it uses: the base's objects, its `replicas` count and its
Deployment patch merged into the Deployment (maps merged, containers
matched by name), its secretGenerator's Secret built from its files. Then
broken copies of the Deployment (a string replica count, a container
without its required name, a port that is not a number) must be refused:
a validator that accepts them checks nothing. kubernetes-models does not
reject unknown fields (the upstream schemas allow them), so a misspelled
key is not caught here; kubectl's server-side dry run catches those.
"""
import copy
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
BASE = os.path.join(K8S, "base")
OVERLAY = os.path.join(K8S, "overlays", "example")
SKIP = {"kustomization.yaml"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def base_objects():
    out = []
    for name in sorted(os.listdir(BASE)):
        if name.endswith((".yaml", ".yml")) and name not in SKIP:
            for i, d in enumerate(load(os.path.join(BASE, name))):
                out.append(("base/%s[%d] %s" % (name, i, d.get("kind")), d))
    return out


def merge(dst, patch):
    """kustomize's strategic merge for what the overlay patches: maps are
    merged, lists of named items (containers) merged by name."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        elif (isinstance(v, list) and isinstance(dst.get(k), list) and
              all(isinstance(x, dict) and "name" in x for x in v)):
            for item in v:
                same = next((x for x in dst[k] if x.get("name") ==
                             item["name"]), None)
                if same is None:
                    dst[k].append(item)
                else:
                    merge(same, item)
        else:
            dst[k] = v


def overlay_objects(base):
    kust = load(os.path.join(OVERLAY, "kustomization.yaml"))[0]
    assert kust.get("resources") == ["../../base"], kust.get("resources")
    listed = set(load(os.path.join(BASE, "kustomization.yaml"))[0]
                 ["resources"])
    objs = [copy.deepcopy(d) for n, d in base
            if n.split("[")[0][len("base/"):] in listed]
    for r in kust.get("replicas", []):
        for d in objs:
            if d["metadata"]["name"] == r["name"] and d["kind"] in (
                    "Deployment", "StatefulSet"):
                d["spec"]["replicas"] = r["count"]
    for p in kust.get("patches", []):
        patch = load(os.path.join(OVERLAY, p["path"]))[0]
        target = next(d for d in objs if d["kind"] == patch["kind"] and
                      d["metadata"]["name"] == patch["metadata"]["name"])
        merge(target, patch)
    for g in kust.get("secretGenerator", []):
        data = {}
        for spec in g.get("files", []):
            key, _, fname = spec.partition("=")
            with open(os.path.join(OVERLAY, fname), encoding="utf-8") as f:
                data[key] = f.read()
        objs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": g["name"]}, "stringData": data})
    return [("overlay/example %s %s" % (d["kind"], d["metadata"]["name"]), d)
            for d in objs]


def validate(node_dir, items):
    r = subprocess.run(
        ["node", os.path.join(ROOT, "tests", "deploy", "validate.mjs"),
         node_dir],
        input=json.dumps([{"name": n, "object": o} for n, o in items]),
        capture_output=True, text=True, timeout=60)
    if r.returncode not in (0, 2):
        sys.exit("validate.mjs failed (%d): %s" % (r.returncode, r.stderr))
    return {x["name"]: x for x in map(json.loads, r.stdout.splitlines())}


def broken(dep):
    def with_(f):
        d = copy.deepcopy(dep)
        f(d)
        return d
    c0 = lambda d: d["spec"]["template"]["spec"]["containers"][0]  # noqa
    return [
        ("broken: replicas \"three\"",
         with_(lambda d: d["spec"].__setitem__("replicas", "three"))),
        ("broken: a container without its name",
         with_(lambda d: c0(d).pop("name"))),
        ("broken: containerPort \"http\"",
         with_(lambda d: c0(d)["ports"][0].__setitem__("containerPort",
                                                        "http"))),
    ]


def main():
    node_dir = os.environ.get("ORDERD_TEST_NODE")
    if not node_dir or not os.path.isdir(os.path.join(node_dir,
                                                      "node_modules")):
        sys.exit("ORDERD_TEST_NODE must name the node.setup fixture's "
                 "directory (tests/node/README.md)")
    base = base_objects()
    over = overlay_objects(base)
    dep = next(d for n, d in base if d["kind"] == "Deployment")
    bad = broken(dep)
    res = validate(node_dir, base + over + bad)
    failures = 0
    for name, _ in base + over:
        r = res.get(name, {"ok": False, "error": "no verdict"})
        print("%s - %s conforms to Kubernetes' schema%s" % (
            "ok" if r["ok"] else "not ok", name,
            "" if r["ok"] else ": " + r.get("error", "")))
        failures += not r["ok"]
    for name, _ in bad:
        r = res.get(name, {"ok": True})
        refused = not r["ok"] and not r.get("error", "").startswith(
            "no model")
        print("%s - %s is refused%s" % (
            "ok" if refused else "not ok", name,
            ": " + r.get("error", "")[:120] if refused else ""))
        failures += not refused
    kinds = sorted({d["kind"] for _, d in base + over})
    print("# %d objects (%s), %d broken copies; %d failures" % (
        len(base + over), ", ".join(kinds), len(bad), failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
