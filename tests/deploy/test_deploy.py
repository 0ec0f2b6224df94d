#!/usr/bin/python3
"""Checks deploy/ without a container engine or a cluster: what can be
validated on this machine, so that the deployment files cannot silently rot.

- deploy/prometheus: `promtool check rules` and `promtool test rules`; each
  alert carries severity, summary, description and a runbook link to a real
  heading; each is tested firing and not firing; every metric it reads is
  documented in docs/operations.md.
- deploy/kubernetes: every file parses (python3-yaml); labels and selectors,
  ports, probe paths, Secret keys, env var names (docs/config.md), drain vs
  termination grace, HPA target and metric names vs the prometheus-adapter
  rules, whose queries are expanded and evaluated by promtool on sample
  series.
- deploy/Containerfile: every package exists in Debian (apt-cache show, or
  installed), the build stage holds the packages of scripts/deps.sh, the
  runtime stage installs exactly the packages owning the libraries that
  orderd and orderctl link (objdump NEEDED, resolved by ldd, owned per
  dpkg -S), the files it copies suffice to configure the build (cmake in a
  scratch directory), and its RUN lines are valid sh.

Usage: test_deploy.py [ORDERD_BIN [ORDERCTL_BIN]]   (default build/orderd,
build/orderctl; or $ORDERD_BIN / $ORDERCTL_BIN). Needs promtool (Debian
prometheus), python3-yaml, apt, dpkg, binutils, cmake. Exits 0 when every
check passes, 1 otherwise; prints one line per check.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
	import yaml
except ImportError:
	print("FAIL - python3-yaml is not installed (apt-get install python3-yaml)")
	sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes", "base")
PROM = os.path.join(DEPLOY, "prometheus")

failures = 0
checks = 0


def check(ok, what, detail=""):
	"""Records one check; prints it. Returns ok so callers can chain."""
	global failures, checks
	checks += 1
	if ok:
		print("ok   - " + what)
	else:
		failures += 1
		print("FAIL - " + what + (": " + detail if detail else ""))
	return ok


def run(argv, **kw):
	return subprocess.run(argv, capture_output=True, text=True, **kw)


def read(path):
	with open(path, encoding="utf-8") as f:
		return f.read()


def slug(heading):
	"""GitHub's anchor for a Markdown heading."""
	s = heading.strip().lower()
	s = re.sub(r"[^\w\- ]", "", s)
	return s.replace(" ", "-")


def anchors(md_path):
	return {slug(m.group(1)) for m in
		re.finditer(r"^#+\s+(.*)$", read(md_path), re.M)}


# ---------------------------------------------------------------- documents

OPS_MD = os.path.join(ROOT, "docs", "operations.md")
CONFIG_MD = os.path.join(ROOT, "docs", "config.md")


def documented_metrics():
	"""Metric names in the metrics table of docs/operations.md."""
	names = set()
	for m in re.finditer(r"^\|\s*`(orderd_[a-z_]+)", read(OPS_MD), re.M):
		names.add(m.group(1))
	return names


def documented_env():
	"""ORDERD_* variables in the settings table of docs/config.md."""
	return set(re.findall(r"^\|[^|\n]*\|\s*`(ORDERD_[A-Z_]+)`", read(CONFIG_MD), re.M))


def documented_endpoints():
	"""GET paths the docs promise (docs/api.md when present, and
	docs/operations.md), and the paths in the daemon's route table."""
	docs = ""
	for name in ("api.md", "operations.md"):
		p = os.path.join(ROOT, "docs", name)
		if os.path.exists(p):
			docs += read(p)
	in_docs = set(re.findall(r"GET (/[A-Za-z0-9_/]+)", docs))
	routes = set()
	api_c = os.path.join(ROOT, "src", "http", "api.c")
	if os.path.exists(api_c):
		routes = set(re.findall(r'\{"(/[^"]*)",\s*"GET"', read(api_c)))
	return in_docs, routes


# --------------------------------------------------------------- prometheus

REQUIRED_ALERTS = [
	"OrderdHighErrorRate", "OrderdProcessingBacklog", "OrderdDeadLetters",
	"OrderdLeaseExpirations", "OrderdFenceRejections", "OrderdStoreErrors",
	"OrderdBuiltinAlertFiring", "OrderdDown",
	"OrderdErrorBudgetBurn", "OrderdErrorBudgetBurnSlow",
	"OrderdConfirmErrors", "OrderdNotificationBacklog",
	"OrderdDeadNotifications",
]

# A metric name in a rule: orderd_..., but not inside a recording rule's
# level:metric:operation name (namespace:orderd_slo_errors:ratio_rate5m).
METRIC_RE = re.compile(r"(?<![\w:])(orderd_[a-z_]+)(?![\w:])")
RECORDED_RE = re.compile(r"\b([a-z_]+:[a-z_]+:[a-z0-9_]+)\b")


def check_prometheus(promtool):
	alerts_yml = os.path.join(PROM, "alerts.yml")
	tests_yml = os.path.join(PROM, "alerts_test.yml")
	if promtool:
		r = run([promtool, "check", "rules", alerts_yml])
		check(r.returncode == 0, "promtool check rules deploy/prometheus/alerts.yml",
		      (r.stdout + r.stderr).strip())
		r = run([promtool, "test", "rules", tests_yml], cwd=PROM)
		check(r.returncode == 0, "promtool test rules deploy/prometheus/alerts_test.yml",
		      (r.stdout + r.stderr).strip())

	all_rules = [r for g in yaml.safe_load(read(alerts_yml))["groups"]
		     for r in g["rules"]]
	rules = [r for r in all_rules if "alert" in r]
	recorded = {r["record"] for r in all_rules if "record" in r}
	names = [r["alert"] for r in rules]
	missing = [a for a in REQUIRED_ALERTS if a not in names]
	check(not missing, "alerts.yml defines the %d required alerts" % len(REQUIRED_ALERTS),
	      "missing " + ", ".join(missing))

	metrics = documented_metrics()
	ops_anchors = anchors(OPS_MD)
	bad = []
	for r in rules:
		labels = r.get("labels", {})
		ann = r.get("annotations", {})
		if labels.get("severity") not in ("critical", "warning", "info"):
			bad.append(r["alert"] + ": severity")
		for key in ("summary", "description", "runbook_url"):
			if not ann.get(key):
				bad.append(r["alert"] + ": no " + key)
		m = re.match(r"docs/operations\.md#([\w-]+)$", ann.get("runbook_url", ""))
		if not m or m.group(1) not in ops_anchors:
			bad.append(r["alert"] + ": runbook_url is not a heading of docs/operations.md")
		for metric in METRIC_RE.findall(r["expr"]):
			if metric not in metrics:
				bad.append(r["alert"] + ": metric %s not in docs/operations.md" % metric)
		for name in RECORDED_RE.findall(r["expr"]):
			if name not in recorded:
				bad.append(r["alert"] + ": reads %s, which no rule records" % name)
	for r in all_rules:
		if "record" not in r:
			continue
		for metric in METRIC_RE.findall(r["expr"]):
			if metric not in metrics:
				bad.append(r["record"] + ": metric %s not in docs/operations.md" % metric)
	check(not bad, "every alert has severity, summary, description, a live runbook "
	      "anchor, and reads documented metrics (or recorded rules) only",
	      "; ".join(bad))

	fired, quiet = set(), set()
	for t in yaml.safe_load(read(tests_yml))["tests"]:
		for a in t.get("alert_rule_test", []):
			(fired if a.get("exp_alerts") else quiet).add(a["alertname"])
	untested = [a for a in names if a not in fired or a not in quiet]
	check(not untested, "alerts_test.yml shows every alert both firing and not firing",
	      "incomplete: " + ", ".join(untested))
	tested_exprs = " ".join(e["expr"] for t in yaml.safe_load(read(tests_yml))["tests"]
				for e in t.get("promql_expr_test", []))
	used = " ".join(r["expr"] for r in rules)
	unchecked = sorted(n for n in recorded
			   if n not in tested_exprs and n not in used)
	check(not unchecked, "every recording rule is read by an alert or checked "
	      "by a promql_expr_test", "unchecked: " + ", ".join(unchecked))


# --------------------------------------------------------------- kubernetes

def load_k8s():
	"""All documents of deploy/kubernetes/*.yaml, by kind (first of each)."""
	docs = {}
	for name in sorted(os.listdir(K8S)):
		if not name.endswith((".yaml", ".yml")):
			continue
		path = os.path.join(K8S, name)
		try:
			loaded = [d for d in yaml.safe_load_all(read(path)) if d]
		except yaml.YAMLError as e:
			check(False, "deploy/kubernetes/%s parses as YAML" % name, str(e))
			continue
		check(bool(loaded), "deploy/kubernetes/%s parses as YAML (%s)" %
		      (name, ", ".join(d.get("kind", "?") for d in loaded)))
		for d in loaded:
			docs.setdefault(d.get("kind"), (name, d))
			if d.get("kind") == "ConfigMap":
				docs["ConfigMap/" + d["metadata"]["name"]] = (name, d)
	return docs


def quantity(q):
	"""Kubernetes memory quantity in bytes (the suffixes we use)."""
	units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
	m = re.fullmatch(r"(\d+)([KMG]i?)?", str(q))
	if not m:
		return None
	return int(m.group(1)) * units.get(m.group(2) or "", 1)


def subset(small, big):
	return all(big.get(k) == v for k, v in (small or {}).items())


def check_kubernetes(containerfile):
	docs = load_k8s()
	need = ["Deployment", "Service", "PodDisruptionBudget",
		"HorizontalPodAutoscaler", "Secret", "ConfigMap", "Kustomization"]
	missing = [k for k in need if k not in docs]
	if not check(not missing, "deploy/kubernetes has " + ", ".join(need),
		     "missing " + ", ".join(missing)):
		return
	api = {"Deployment": "apps/v1", "Service": "v1", "PodDisruptionBudget": "policy/v1",
	       "HorizontalPodAutoscaler": "autoscaling/v2", "Secret": "v1", "ConfigMap": "v1"}
	bad = ["%s is %s" % (k, docs[k][1].get("apiVersion")) for k, v in api.items()
	       if docs[k][1].get("apiVersion") != v]
	ns = [k for k, (_, d) in docs.items() if d.get("metadata", {}).get("namespace")]
	check(not bad and not ns, "apiVersions current (apps/v1, policy/v1, autoscaling/v2) "
	      "and no manifest pins a namespace", "; ".join(bad + ["%s has a namespace" % k for k in ns]))

	kust = docs["Kustomization"][1]
	res = kust.get("resources", [])
	gone = [r for r in res if not os.path.exists(os.path.join(K8S, r))]
	check(not gone and "secret.example.yaml" not in res,
	      "kustomization.yaml lists existing files and not the example Secret",
	      "missing " + ", ".join(gone))

	dep = docs["Deployment"][1]
	spec = dep["spec"]
	tmpl = spec["template"]
	pod_labels = tmpl["metadata"]["labels"]
	sel = spec["selector"]["matchLabels"]
	check(sel and subset(sel, pod_labels), "Deployment selector matches its pod labels")
	svc = docs["Service"][1]
	check(subset(svc["spec"]["selector"], pod_labels), "Service selector matches the pods")
	pdb = docs["PodDisruptionBudget"][1]
	check(pdb["spec"]["selector"]["matchLabels"] == sel,
	      "PodDisruptionBudget selects exactly the Deployment's pods")
	spread = tmpl["spec"].get("topologySpreadConstraints", [])
	check(all(subset(c["labelSelector"]["matchLabels"], pod_labels) for c in spread),
	      "topologySpreadConstraints select the pods")
	check(spec.get("replicas") == 3, "Deployment starts with 3 replicas")

	c = tmpl["spec"]["containers"][0]
	ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
	# The settings: the ConfigMap's (envFrom), then the container's env.
	cm = docs.get("ConfigMap/orderd", (None, {}))[1]
	check(c.get("envFrom") == [{"configMapRef": {"name": "orderd"}}] and cm,
	      "the container takes its settings from the ConfigMap orderd (envFrom)")
	cm_data = cm.get("data", {}) or {}
	check(all(isinstance(v, str) for v in cm_data.values()),
	      "ConfigMap values are strings")
	env = {k: {"name": k, "value": v} for k, v in cm_data.items()}
	env.update({e["name"]: e for e in c.get("env", [])})
	check([e["name"] for e in c.get("env", [])] == ["ORDERD_REPLICA_ID"],
	      "only the per-pod ORDERD_REPLICA_ID is set in env; the rest is the ConfigMap's")

	def port_of(ref):
		return ports.get(ref) if isinstance(ref, str) else ref

	listen = env.get("ORDERD_LISTEN", {}).get("value", containerfile.get("listen", ""))
	lport = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
	check(lport is not None and lport in ports.values(),
	      "ORDERD_LISTEN port (%s) is a container port %s" % (lport, sorted(ports.values())))
	check(listen.startswith("0.0.0.0:"), "ORDERD_LISTEN binds all pod interfaces (%s)" % listen)
	check(containerfile.get("expose") == lport and containerfile.get("listen_port") == lport,
	      "Containerfile EXPOSE and ORDERD_LISTEN agree with the container port",
	      "EXPOSE %s, ENV %s" % (containerfile.get("expose"), containerfile.get("listen_port")))
	svc_bad = [p for p in svc["spec"]["ports"] if port_of(p.get("targetPort", p["port"])) is None]
	check(not svc_bad, "Service targetPorts name container ports", str(svc_bad))

	in_docs, routes = documented_endpoints()
	probes = {}
	for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
		pr = c.get(kind)
		if pr:
			probes[kind] = pr["httpGet"]
	check(probes.get("readinessProbe", {}).get("path") == "/readyz" and
	      probes.get("livenessProbe", {}).get("path") == "/livez",
	      "readinessProbe is /readyz, livenessProbe is /livez")
	bad = ["%s %s" % (k, g["path"]) for k, g in probes.items()
	       if g["path"] not in in_docs or (routes and g["path"] not in routes)
	       or port_of(g["port"]) != lport]
	check(not bad, "probe paths are documented GET endpoints served by the route table, "
	      "on the serving port", "; ".join(bad))

	ann = tmpl["metadata"].get("annotations", {})
	check(ann.get("prometheus.io/scrape") == "true" and
	      str(ann.get("prometheus.io/port")) == str(lport) and
	      ann.get("prometheus.io/path") == "/metrics" and "/metrics" in in_docs,
	      "Prometheus scrape annotations point at /metrics on the serving port")

	documented = documented_env()
	used = set(env) | set(containerfile.get("env", {}))
	undocumented = sorted(n for n in used if n not in documented)
	check(documented and not undocumented,
	      "every env var (%d) is a setting in docs/config.md" % len(used),
	      "unknown: " + ", ".join(undocumented))
	rid = env.get("ORDERD_REPLICA_ID", {}).get("valueFrom", {}).get("fieldRef", {})
	check(rid.get("fieldPath") == "metadata.name", "ORDERD_REPLICA_ID is the pod name (downward API)")

	secret = docs["Secret"][1]
	sdata = dict(secret.get("stringData", {}))
	sdata.update(secret.get("data", {}) or {})
	refs = [(e["name"], e["valueFrom"]["secretKeyRef"]) for e in c.get("env", [])
		if "secretKeyRef" in e.get("valueFrom", {})]
	for vol in tmpl["spec"].get("volumes", []):
		if "secret" in vol:
			for it in vol["secret"].get("items", []):
				refs.append(("volume " + vol["name"],
					     {"name": vol["secret"]["secretName"], "key": it["key"]}))
	bad = ["%s -> %s/%s" % (n, r["name"], r["key"]) for n, r in refs
	       if r["name"] != secret["metadata"]["name"] or r["key"] not in sdata]
	check(not bad, "every Secret reference has its key in secret.example.yaml",
	      "; ".join(bad))
	check(not any(n.startswith("ORDERD_") for n, _ in refs),
	      "no secret is an environment variable (they are files)")
	# The *_FILE settings name files of a mounted Secret item.
	files = set()
	for m in c.get("volumeMounts", []):
		vol = next((v for v in tmpl["spec"].get("volumes", [])
			    if v["name"] == m["name"] and "secret" in v), None)
		for it in (vol or {}).get("secret", {}).get("items", []):
			files.add(m["mountPath"].rstrip("/") + "/" + it["path"])
	want = ["ORDERD_DATABASE_FILE", "ORDERD_API_TOKENS_FILE"]
	bad = [n for n in want if env.get(n, {}).get("value") not in files]
	check(not bad and "ORDERD_DATABASE" not in env,
	      "the database URI and the API tokens are files of the mounted Secret "
	      "(ORDERD_DATABASE_FILE, ORDERD_API_TOKENS_FILE)", "; ".join(bad))
	check(all("CHANGE-ME" in str(v) for v in sdata.values()),
	      "secret.example.yaml holds placeholders only (CHANGE-ME)")
	mounts = {m["name"] for m in c.get("volumeMounts", [])}
	vols = {v["name"] for v in tmpl["spec"].get("volumes", [])}
	check(mounts <= vols, "volumeMounts name declared volumes")

	drain_ms = int(env.get("ORDERD_DRAIN_MS", {}).get("value", "20000"))
	delay_ms = int(env.get("ORDERD_SHUTDOWN_DELAY_MS", {}).get("value", "0"))
	grace = tmpl["spec"].get("terminationGracePeriodSeconds", 30)
	check(delay_ms >= 2000,
	      "ORDERD_SHUTDOWN_DELAY_MS %d ms >= 2 s: the endpoints and kube-proxy stop "
	      "routing to the pod before its drain refuses work" % delay_ms)
	check(grace * 1000 >= delay_ms + drain_ms + 5000,
	      "terminationGracePeriodSeconds %ss >= ORDERD_SHUTDOWN_DELAY_MS %d ms + "
	      "ORDERD_DRAIN_MS %d ms + 5 s margin" % (grace, delay_ms, drain_ms))
	check("preStop" not in c.get("lifecycle", {}),
	      "no preStop hook (the shutdown delay is the pause; a preStop sleep would add to it)")
	check(str(tmpl["spec"].get("securityContext", {}).get("fsGroup")) ==
	      str(containerfile.get("uid")),
	      "fsGroup is the image's group: the 0440 secret files are readable")

	resources = c.get("resources", {})
	req, lim = resources.get("requests", {}), resources.get("limits", {})
	rq, lm = quantity(req.get("memory")), quantity(lim.get("memory"))
	check(req.get("cpu") and rq and lm and rq >= 64 << 20 and lm >= rq,
	      "resources: cpu request, memory request >= 64Mi (RSS target), limit >= request",
	      str(resources))

	sc = dict(tmpl["spec"].get("securityContext", {}))
	sc.update(c.get("securityContext", {}))
	check(sc.get("runAsNonRoot") is True and
	      str(sc.get("runAsUser")) == str(containerfile.get("uid")),
	      "pods run as non-root, as the image's uid (%s)" % containerfile.get("uid"))

	version = re.search(r"project\(orderd VERSION ([0-9.]+)", read(os.path.join(ROOT, "CMakeLists.txt")))
	check(version and c["image"].endswith(":" + version.group(1)),
	      "container image tag matches the project version (%s)" % c["image"])

	hpa = docs["HorizontalPodAutoscaler"][1]["spec"]
	ref = hpa["scaleTargetRef"]
	check(ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]},
	      "HPA scales the Deployment")
	check(3 <= hpa["minReplicas"] <= hpa["maxReplicas"] and
	      hpa["minReplicas"] > pdb["spec"].get("maxUnavailable", 0),
	      "HPA minReplicas %d..maxReplicas %d, above the PDB's maxUnavailable" %
	      (hpa["minReplicas"], hpa["maxReplicas"]))
	ext = [m["external"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "External"]
	cpu = [m for m in hpa["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
	check(cpu and req.get("cpu"), "HPA has a CPU fallback metric, and pods request CPU")
	check_adapter(docs["ConfigMap/prometheus-adapter-orderd"][1], ext)


def check_adapter(cm, hpa_metrics):
	"""The prometheus-adapter rules serve the HPA's External metrics, from
	documented series; their queries are evaluated by promtool."""
	conf = yaml.safe_load(cm["data"]["config.yaml"])
	rules = conf.get("externalRules", [])
	served = {r["name"]["as"]: r for r in rules}
	check(sorted(hpa_metrics) == sorted(served) and
	      "orderd_oldest_pending_order_age_seconds" in served,
	      "prometheus-adapter serves exactly the HPA's External metrics %s" % sorted(hpa_metrics),
	      "adapter serves %s" % sorted(served))
	metrics = documented_metrics()
	bad = []
	for name, r in served.items():
		series = re.match(r"\s*(\w+)", r["seriesQuery"]).group(1)
		if series not in metrics:
			bad.append("%s reads undocumented %s" % (name, series))
		if not re.search(r"^\^?%s\$?$" % series, r["name"]["matches"]):
			bad.append("%s: name.matches does not match %s" % (name, series))
	check(not bad, "adapter rules read documented metrics", "; ".join(bad))
	promtool = shutil.which("promtool")
	if not promtool:
		return
	# Expand the adapter's templates as it would for an HPA in namespace
	# "shop", and check the values on three replicas in two namespaces.
	rec = []
	for name, r in served.items():
		series = re.match(r"\s*(\w+)", r["seriesQuery"]).group(1)
		q = r["metricsQuery"].replace("<<.Series>>", series)
		q = q.replace("<<.LabelMatchers>>", 'namespace="shop"')
		rec.append({"record": "adapter:" + name, "expr": q})
	tests = {
		"rule_files": ["rules.yml"],
		"evaluation_interval": "1m",
		"tests": [{
			"interval": "1m",
			"input_series": [
				{"series": 'orderd_oldest_pending_order_age_seconds{namespace="shop",pod="a"}', "values": "12x3"},
				{"series": 'orderd_oldest_pending_order_age_seconds{namespace="shop",pod="b"}', "values": "13x3"},
				{"series": 'orderd_oldest_pending_order_age_seconds{namespace="shop",pod="c"}', "values": "12x3"},
				{"series": 'orderd_oldest_pending_order_age_seconds{namespace="other",pod="d"}', "values": "999x3"},
				{"series": 'orderd_orders{namespace="shop",pod="a",status="pending"}', "values": "6000x3"},
				{"series": 'orderd_orders{namespace="shop",pod="b",status="pending"}', "values": "6000x3"},
				{"series": 'orderd_orders{namespace="shop",pod="a",status="completed"}', "values": "90000x3"},
				{"series": 'orderd_orders{namespace="other",pod="d",status="pending"}', "values": "77x3"},
			],
			"promql_expr_test": [
				{"expr": "adapter:orderd_oldest_pending_order_age_seconds", "eval_time": "2m",
				 "exp_samples": [{"labels": 'adapter:orderd_oldest_pending_order_age_seconds{namespace="shop"}', "value": 13}]},
				{"expr": "adapter:orderd_pending_orders", "eval_time": "2m",
				 "exp_samples": [{"labels": 'adapter:orderd_pending_orders{namespace="shop"}', "value": 6000}]},
			],
		}],
	}
	if set(served) != {"orderd_oldest_pending_order_age_seconds", "orderd_pending_orders"}:
		check(False, "adapter queries evaluated", "unexpected metric set")
		return
	with tempfile.TemporaryDirectory(prefix="deploy-adapter-") as d:
		with open(os.path.join(d, "rules.yml"), "w") as f:
			yaml.safe_dump({"groups": [{"name": "adapter", "rules": rec}]}, f)
		with open(os.path.join(d, "test.yml"), "w") as f:
			yaml.safe_dump(tests, f)
		r = run([promtool, "test", "rules", "test.yml"], cwd=d)
		check(r.returncode == 0, "adapter queries, expanded for one namespace, give the "
		      "store-wide value once (max over replicas, other namespaces excluded)",
		      (r.stdout + r.stderr).strip())


# ------------------------------------------------------------- Containerfile

def parse_containerfile(path):
	"""Stages of a Dockerfile: list of dicts with base, instructions."""
	text = read(path)
	text = re.sub(r"\\\n", " ", text)  # line continuations
	stages = []
	for line in text.splitlines():
		line = line.strip()
		if not line or line.startswith("#"):
			continue
		word, _, rest = line.partition(" ")
		word = word.upper()
		if word == "FROM":
			stages.append({"from": rest.split()[0], "ins": []})
		elif stages:
			stages[-1]["ins"].append((word, rest.strip()))
	return stages


def apt_packages(run_line):
	"""Package names of every `apt-get install` in a RUN line."""
	pkgs = []
	for m in re.finditer(r"apt-get install((?:\s+[^\s&|;]+)+)", run_line):
		pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
	return pkgs


def deps_sh_run_set():
	text = read(os.path.join(ROOT, "scripts", "deps.sh"))
	m = re.search(r'want="([^"]*)"', text)
	return set(m.group(1).split()) if m else set()


def package_exists(name):
	"""In Debian's archive per apt-cache, or at least installed (when the
	machine has no apt lists)."""
	if run(["apt-cache", "show", name]).returncode == 0:
		return "apt-cache"
	r = run(["dpkg-query", "-W", "-f=${Status}", name])
	if r.returncode == 0 and "ok installed" in r.stdout:
		return "dpkg"
	return None


def linked_packages(binary):
	"""{package: [libs]} owning the libraries binary links directly."""
	r = run(["objdump", "-p", binary])
	if r.returncode != 0:
		raise RuntimeError("objdump -p %s: %s" % (binary, r.stderr.strip()))
	needed = re.findall(r"^\s*NEEDED\s+(\S+)", r.stdout, re.M)
	r = run(["ldd", binary])
	paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", r.stdout, re.M))
	out = {}
	for lib in needed:
		if lib.startswith("ld-linux"):
			path = "/lib64/" + lib
		else:
			path = paths.get(lib)
		if not path:
			raise RuntimeError("ldd does not resolve " + lib)
		owner = None
		for p in (os.path.realpath(path), path):
			r = run(["dpkg", "-S", p])
			if r.returncode == 0:
				owner = r.stdout.split(":")[0].strip()
				break
			# usrmerge: /lib/x -> /usr/lib/x in dpkg's database
			alt = p[4:] if p.startswith("/usr/") else "/usr" + p
			r = run(["dpkg", "-S", alt])
			if r.returncode == 0:
				owner = r.stdout.split(":")[0].strip()
				break
		if not owner:
			raise RuntimeError("dpkg -S finds no package for " + path)
		out.setdefault(owner, []).append(lib)
	return out


# Packages the runtime stage may install besides linked libraries.
RUNTIME_EXTRAS = {"ca-certificates"}
SANITIZER_LIBS = re.compile(r"^lib(asan|tsan|ubsan|lsan)\d*$")


def check_containerfile(bins):
	path = os.path.join(DEPLOY, "Containerfile")
	stages = parse_containerfile(path)
	info = {}
	if not check(len(stages) == 2 and all(s["from"].startswith("debian:12-slim") for s in stages),
		     "Containerfile: two stages, both FROM debian:12-slim",
		     str([s["from"] for s in stages])):
		return info
	build, rt = stages

	def ins(stage, word):
		return [rest for w, rest in stage["ins"] if w == word]

	build_pkgs = [p for r in ins(build, "RUN") for p in apt_packages(r)]
	rt_pkgs = [p for r in ins(rt, "RUN") for p in apt_packages(r)]
	missing = sorted(deps_sh_run_set() - set(build_pkgs))
	check(build_pkgs and not missing,
	      "build stage installs the build packages of scripts/deps.sh", "missing " + ", ".join(missing))
	dev_in_rt = [p for p in rt_pkgs if p.endswith("-dev") or p in ("gcc", "cmake", "make")]
	check(rt_pkgs and not dev_in_rt, "runtime stage installs no -dev packages or tool chain",
	      ", ".join(dev_in_rt))

	bad, how = [], {}
	for p in sorted(set(build_pkgs + rt_pkgs)):
		src = package_exists(p)
		if src:
			how[src] = how.get(src, 0) + 1
		else:
			bad.append(p)
	check(not bad, "every package in the Containerfile (%d) exists in Debian (%s)" %
	      (len(set(build_pkgs + rt_pkgs)), ", ".join("%d via %s" % (n, s) for s, n in sorted(how.items()))),
	      "unknown: " + ", ".join(bad))

	try:
		linked = {}
		for b in bins:
			for pkg, libs in linked_packages(b).items():
				linked.setdefault(pkg, set()).update(libs)
	except (RuntimeError, OSError) as e:
		check(False, "libraries linked by the binaries resolved to packages", str(e))
		linked = None
	if linked is not None:
		linked.pop("libc6", None)  # the base image's C library
		ignored = sorted(p for p in linked if SANITIZER_LIBS.match(p))
		for p in ignored:
			linked.pop(p)
		want = set(linked)
		have = set(rt_pkgs) - RUNTIME_EXTRAS
		detail = []
		if want - have:
			detail.append("linked but not installed: " + ", ".join(
				"%s (%s)" % (p, ", ".join(sorted(linked[p]))) for p in sorted(want - have)))
		if have - want:
			detail.append("installed but linked by neither binary: " + ", ".join(sorted(have - want)))
		check(want == have, "runtime packages = owners of the libraries %s link: %s%s" %
		      (" and ".join(os.path.relpath(b, ROOT) for b in bins), ", ".join(sorted(want)),
		       " (sanitizer runtimes ignored: %s)" % ", ".join(ignored) if ignored else ""),
		      "; ".join(detail))

	user = (ins(rt, "USER") or [""])[-1]
	uid = user.split(":")[0]
	check(uid.isdigit() and int(uid) != 0, "runtime runs as a numeric non-root user (%s)" % user)
	info["uid"] = uid
	entry = (ins(rt, "ENTRYPOINT") or [""])[-1]
	check(re.fullmatch(r'\[\s*"[^"]*/orderd"\s*\]', entry) is not None,
	      "ENTRYPOINT is orderd, exec form (%s)" % entry)
	check(ins(rt, "STOPSIGNAL") == ["SIGTERM"], "STOPSIGNAL SIGTERM")
	check(not ins(rt, "HEALTHCHECK"), "no HEALTHCHECK (Kubernetes probes instead)")
	expose = (ins(rt, "EXPOSE") or [""])[-1]
	info["expose"] = int(expose.split("/")[0]) if expose.split("/")[0].isdigit() else None
	env = {}
	for rest in ins(rt, "ENV"):
		for k, v in re.findall(r"(\w+)=(\S+)", rest):
			env[k] = v
	info["env"] = env
	info["listen"] = env.get("ORDERD_LISTEN", "")
	lp = info["listen"].rsplit(":", 1)
	info["listen_port"] = int(lp[1]) if len(lp) == 2 and lp[1].isdigit() else None
	check(info["listen"] == "0.0.0.0:8080", "ENV ORDERD_LISTEN=0.0.0.0:8080")
	copies = " ".join(ins(rt, "COPY"))
	check("--from=build" in copies and "build/orderd" in copies and "build/orderctl" in copies,
	      "runtime copies build/orderd and build/orderctl from the build stage")

	bad = []
	for stage in stages:
		for r in ins(stage, "RUN"):
			res = run(["sh", "-n", "-c", r])
			if res.returncode != 0:
				bad.append(r[:60] + ": " + res.stderr.strip())
	check(not bad, "every RUN line is valid sh (sh -n)", "; ".join(bad))

	# The build stage sees only what it COPYs: configure the project from
	# exactly those files in a scratch directory, as the image build would.
	srcs = []
	for rest in ins(build, "COPY"):
		parts = [p for p in rest.split() if not p.startswith("--")]
		srcs += parts[:-1]
	cmake = shutil.which("cmake")
	if cmake:
		with tempfile.TemporaryDirectory(prefix="deploy-ctx-") as d:
			for s in srcs:
				src = os.path.join(ROOT, s)
				dst = os.path.join(d, s.rstrip("/"))
				if os.path.isdir(src):
					shutil.copytree(src, dst)
				else:
					shutil.copy(src, dst)
			res = run([cmake, "-S", d, "-B", os.path.join(d, "build"),
				   "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
			ok = res.returncode == 0
			if ok and os.environ.get("ORDERD_DEPLOY_FULL_BUILD") == "1":
				res = run([cmake, "--build", os.path.join(d, "build"), "-j2",
					   "--target", "orderd", "orderctl"])
				ok = res.returncode == 0
			check(ok, "the build stage's COPY set (%s) configures%s with cmake" %
			      (" ".join(srcs), " and builds" if os.environ.get("ORDERD_DEPLOY_FULL_BUILD") == "1" else ""),
			      (res.stdout + res.stderr).strip()[-2000:])
	else:
		check(False, "cmake available to configure the build stage's sources")
	return info


def check_doc_links():
	"""Relative links of docs/deploy.md lead to existing files and headings."""
	path = os.path.join(ROOT, "docs", "deploy.md")
	bad = []
	for target in re.findall(r"\]\(([^)\s]+)\)", read(path)):
		if re.match(r"[a-z]+:", target):
			continue
		file, _, anchor = target.partition("#")
		dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
		if not os.path.exists(dest):
			bad.append(target)
		elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
			bad.append(target)
	check(not bad, "docs/deploy.md links lead to existing files and headings", ", ".join(bad))


def main():
	orderd = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
		"ORDERD_BIN", os.path.join(ROOT, "build", "orderd"))
	orderctl = sys.argv[2] if len(sys.argv) > 2 else os.environ.get(
		"ORDERCTL_BIN", os.path.join(ROOT, "build", "orderctl"))
	bins = [b for b in (orderd, orderctl)]
	absent = [b for b in bins if not os.path.exists(b)]
	check(not absent, "binaries to inspect exist", "missing " + ", ".join(absent)
	      + " (build them, or pass ORDERD_BIN ORDERCTL_BIN)")
	promtool = shutil.which("promtool")
	check(promtool is not None, "promtool is installed",
	      "apt-get install prometheus (Debian's package provides promtool)")

	print("# deploy/prometheus")
	check_prometheus(promtool)
	print("# deploy/Containerfile")
	info = check_containerfile([b for b in bins if os.path.exists(b)])
	print("# deploy/kubernetes")
	check_kubernetes(info)
	print("# docs/deploy.md")
	check_doc_links()

	print("# %d checks, %d failed (not validated here: building the image, "
	      "running it, applying to a cluster)" % (checks, failures))
	return 1 if failures else 0


if __name__ == "__main__":
	sys.exit(main())
