#!/usr/bin/env bash
# Validates the deployment files offline: docker-compose.yml, deploy/k8s/ and the wharf.toml files they carry.
#
#     scripts/validate-deploy.sh              # YAML, compose-spec schema, Kubernetes schemas, TOML syntax
#     WHARF_BIN=target/release/wharf scripts/validate-deploy.sh   # also: wharf itself loads each config
#
# Checks, each of which must pass (exit status 1 otherwise):
#   1. every YAML file parses (PyYAML, safe loader; multi-document files too);
#   2. docker-compose.yml against the compose-spec JSON schema (check-jsonschema's vendored copy, so no
#      download); `docker compose config -q` too when a docker CLI with compose is installed;
#   3. deploy/k8s builds with kustomize (`kubectl kustomize`, offline) and every resource it renders is
#      valid against the Kubernetes OpenAPI schemas for the versions below, strictly (unknown fields are
#      errors), with kubernetes-validate (schemas ship inside the package);
#   4. deploy/wharf.compose.toml and the wharf.toml inside the ConfigMap parse as TOML, the passive range in
#      the ConfigMap matches the ports the Service and the Deployment publish, and the compose file
#      publishes the compose config's range one to one;
#   5. the files deploy/Dockerfile copies into its builder exist, survive .dockerignore, and let cargo
#      resolve the manifest and the lock file offline (no Docker engine needed);
#   6. with WHARF_BIN: wharf loads each config file with the environment the stack gives it (secrets
#      replaced by dummies, the database by an in-memory SQLite) and answers a read-only command.
# Missing Python tools are installed with pip (check-jsonschema, kubernetes-validate, PyYAML).
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
k8s_versions=(1.30.0 1.37.0)
failed=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; failed=1; }

need_py() { # module, pip package
  python3 -c "import $1" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "$2" >&2
}
need_py yaml PyYAML
command -v check-jsonschema >/dev/null || python3 -m pip install -q --disable-pip-version-check check-jsonschema >&2
command -v kubernetes-validate >/dev/null || python3 -m pip install -q --disable-pip-version-check kubernetes-validate >&2
# kubectl renders the kustomization; without it the listed resources are checked as they are (no
# namespace or label transforms, which the schemas do not depend on).
render_k8s() {
  if command -v kubectl >/dev/null; then
    kubectl kustomize deploy/k8s
  else
    echo "(no kubectl here: checking the kustomization's resources without its transforms)" >&2
    python3 - <<'PY'
import yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
print("\n---\n".join(open(f"deploy/k8s/{r}").read() for r in k["resources"]))
PY
  fi
}

step "YAML parses"
mapfile -t yamls < <(ls docker-compose.yml deploy/k8s/*.yaml)
python3 - "${yamls[@]}" <<'PY' || fail "YAML"
import sys, yaml
bad = 0
for path in sys.argv[1:]:
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        print(f"ok  {path} ({len(docs)} document{'s' if len(docs) != 1 else ''})")
    except yaml.YAMLError as e:
        print(f"BAD {path}: {e}"); bad = 1
sys.exit(bad)
PY

step "docker-compose.yml against the compose-spec schema"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml || fail "compose schema"
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q && echo "ok  docker compose config" || fail "docker compose config"
else
  echo "(no docker compose CLI here: skipped \`docker compose config -q\`)"
fi

step "deploy/k8s: kustomize build, then Kubernetes schemas (strict)"
rendered="$(mktemp --suffix=.yaml)"
trap 'rm -f "$rendered"' EXIT
if render_k8s >"$rendered"; then
  echo "ok  kustomize deploy/k8s ($(grep -c '^kind:' "$rendered") resources)"
  for v in "${k8s_versions[@]}"; do
    kubernetes-validate --strict --quiet -k "$v" "$rendered" && echo "ok  Kubernetes $v schemas" || fail "k8s schema $v"
  done
  # Every file on its own too, so a resource left out of kustomization.yaml is still checked.
  for f in deploy/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    kubernetes-validate --strict --quiet "$f" || fail "k8s schema $f"
  done
else
  fail "kustomize build"
fi

step "wharf.toml files parse and the passive ports agree"
python3 - "$rendered" <<'PY' || fail "wharf.toml / ports"
import sys, tomllib, yaml
bad = 0
def check(cond, msg):
    global bad
    print(("ok  " if cond else "BAD ") + msg); bad |= not cond
def span(text):
    a, b = (int(x) for x in text.split("-")); return set(range(a, b + 1))

compose_toml = tomllib.load(open("deploy/wharf.compose.toml", "rb"))
check(True, "deploy/wharf.compose.toml parses")
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
cm_toml = tomllib.loads(by_kind[("ConfigMap", "wharf-config")]["data"]["wharf.toml"])
check(True, "the ConfigMap's wharf.toml parses")

passive = span(cm_toml["ftp"]["passive_ports"])
svc = by_kind[("Service", "wharf-ftps")]["spec"]["ports"]
svc_pasv = {p["port"] for p in svc if p["name"].startswith("pasv")}
check(svc_pasv == passive and all(p["port"] == p["targetPort"] for p in svc if p["name"].startswith("pasv")),
      f"Service wharf-ftps publishes exactly ftp.passive_ports {cm_toml['ftp']['passive_ports']}, port = targetPort")
pod = by_kind[("Deployment", "wharf")]["spec"]["template"]["spec"]
ctr = next(c for c in pod["containers"] if c["name"] == "wharf")
check({p["containerPort"] for p in ctr["ports"] if p["name"].startswith("pasv")} == passive,
      "the Deployment declares the same passive ports")
check(len(passive) <= 100, f"the passive range is small ({len(passive)} ports)")
listen = {int(cm_toml["ftp"][k].rsplit(":", 1)[1]) for k in ("explicit_listen", "implicit_listen")}
named = {p["name"]: p["containerPort"] for p in ctr["ports"]}
check({named["ftps"], named["ftps-implicit"]} == listen, "container ports match the FTPS listeners")
check(named["admin"] == int(cm_toml["admin"]["listen"].rsplit(":", 1)[1]), "the admin port matches [admin] listen")
relay = cm_toml["ftp"].get("passive_relay")
if relay:
    relay_port = int(relay["listen"].rsplit(":", 1)[1])
    advertised = {e["value"] for e in ctr["env"] if e["name"] == "WHARF_FTP__PASSIVE_RELAY__ADVERTISE"}
    check(named.get("relay") == relay_port and advertised == {f"$(POD_IP):{relay_port}"},
          f"the relay port {relay_port} is declared and advertised at the pod's IP")
    check(all(not p["name"].startswith("relay") for p in svc), "the relay port stays out of the Service")
probes = {ctr["readinessProbe"]["httpGet"]["path"], ctr["livenessProbe"]["httpGet"]["path"]}
check(probes == {"/readyz", "/healthz"}, "probes use /readyz and /healthz")
sc = ctr["securityContext"]
check(pod["securityContext"].get("runAsNonRoot") and sc.get("readOnlyRootFilesystem"), "non-root, read-only root fs")
check(by_kind[("Deployment", "wharf")]["spec"]["replicas"] >= 3, "at least 3 replicas")

compose = yaml.safe_load(open("docker-compose.yml"))
ports = compose["services"]["wharf"]["ports"]
cpasv = span(compose_toml["ftp"]["passive_ports"])
published = set()
for p in ports:
    parts = p.split(":")
    if len(parts) == 3 and "-" in parts[1]:
        host, ctr_ = span(parts[1]), span(parts[2])
        check(host == ctr_, f"compose publishes {parts[1]} one to one")
        published |= host
check(published == cpasv, f"compose publishes exactly ftp.passive_ports {compose_toml['ftp']['passive_ports']}")
sys.exit(bad)
PY

step "deploy/Dockerfile: what the builder stage copies is enough for cargo (offline)"
# No Docker engine here: instead, lay out exactly the files the builder's COPY lines name (minus what
# .dockerignore drops) and let cargo resolve the manifest, its targets and the lock file from them.
ctx="$(mktemp -d)"
python3 - "$ctx" <<'PY' || fail "Dockerfile COPY sources"
import fnmatch, os, shutil, sys
ctx = sys.argv[1]
ignore = [l.strip().rstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
def ignored(path):
    # Docker's rule: the last pattern that matches decides; "!" patterns re-include.
    result = False
    for pat in ignore:
        neg = pat.startswith("!")
        pat = pat.lstrip("!")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
            result = not neg
    return result
bad = 0
for line in open("deploy/Dockerfile"):
    words = line.split()
    if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
        continue
    *sources, dest = words[1:]
    for src in sources:
        if not os.path.exists(src):
            print(f"BAD COPY {src}: not in the repository"); bad = 1; continue
        if ignored(src):
            print(f"BAD COPY {src}: excluded by .dockerignore"); bad = 1; continue
        target = os.path.join(ctx, src)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, target)
print("ok  every COPY source exists and is in the build context")
# cargo metadata does not look for target files; check every path Cargo.toml names is in the context.
import tomllib
manifest = tomllib.load(open("Cargo.toml", "rb"))
paths = [t["path"] for kind in ("bin", "test", "bench", "example") for t in manifest.get(kind, []) if "path" in t]
paths += [manifest["package"].get("build", "build.rs")] if os.path.exists("build.rs") else []
missing = [p for p in paths if not os.path.exists(os.path.join(ctx, p))]
print(("BAD targets missing from the build context: " + ", ".join(missing)) if missing
      else f"ok  all {len(paths)} paths Cargo.toml names are in the build context")
bad |= bool(missing)
sys.exit(bad)
PY
# `cargo fetch --target` needs only the crates this platform builds (`cargo metadata` wants every
# platform's, and a fresh machine's registry holds only what its own build downloaded); --no-deps
# metadata then checks the manifest's targets against the copied files.
host="$(rustc -vV | sed -n 's/^host: //p')"
if (cd "$ctx" && cargo fetch --locked --offline --target "$host" \
  && cargo metadata --no-deps --locked --offline --format-version 1 >/dev/null); then
  echo "ok  cargo resolves the copied manifest, targets and Cargo.lock (--locked, $host)"
else
  fail "cargo metadata in the Dockerfile's build context"
fi
rm -rf "$ctx"

if [ -n "${WHARF_BIN:-}" ]; then
  step "wharf loads each config ($WHARF_BIN)"
  cm_file="$(mktemp --suffix=.toml)"
  python3 -c 'import sys,yaml; d=[x for x in yaml.safe_load_all(open(sys.argv[1])) if x and x["kind"]=="ConfigMap"][0]; print(d["data"]["wharf.toml"])' "$rendered" >"$cm_file"
  # The Deployment's own WHARF_* settings go with the ConfigMap's file, with a made-up pod IP.
  pod_env="$(python3 -c '
import sys, yaml
d = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x and x["kind"] == "Deployment"][0]
ctr = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "wharf")
for e in ctr.get("env", []):
    if e["name"].startswith("WHARF_") and e["name"] != "WHARF_CONFIG" and "value" in e:
        print(e["name"] + "=" + e["value"].replace("$(POD_IP)", "10.1.2.3"))
' "$rendered")"
  tmp="$(mktemp -d)"
  for cfg in deploy/wharf.compose.toml "$cm_file"; do
    extra=()
    [ "$cfg" = "$cm_file" ] && mapfile -t extra <<<"$pod_env"
    # The stack's secrets as environment variables with dummy values; an in-memory directory; a data
    # folder of our own (the configs name /var/lib/wharf).
    # env -u: wharf reads every WHARF_* variable as configuration and refuses unknown ones.
    # The in-memory directory is new, so it is migrated here even where the config leaves that to a job.
    if env -u WHARF_BIN WHARF_CONFIG="$cfg" WHARF_DATA_DIR="$tmp" WHARF_DATABASE_URL="sqlite::memory:" \
      WHARF_DATABASE__MIGRATE_ON_START=true \
      WHARF_STORAGE__S3__ACCESS_KEY_ID=dummy WHARF_STORAGE__S3__SECRET_ACCESS_KEY=dummy \
      WHARF_SECRET_KEY="$(head -c 32 /dev/zero | base64)" "${extra[@]}" \
      "$WHARF_BIN" ban list >/dev/null 2>"$tmp/err"; then
      echo "ok  wharf accepts $cfg"
    else
      fail "wharf refuses $cfg: $(cat "$tmp/err")"
    fi
  done
  rm -rf "$tmp" "$cm_file"
fi

echo
if [ "$failed" = 0 ]; then echo "validate-deploy: all checks passed"; else echo "validate-deploy: FAILED" >&2; fi
exit "$failed"
