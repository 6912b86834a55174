#!/usr/bin/env bash
# What can be checked of the container set-up without pulling an image (CI has no
# registry): the configuration that compose.yaml and the Containerfile give `sportello`
# through the environment is one `sportello config check` accepts, with the values meant
# (database, documents in S3, trusted proxies, data in the /data volume, the port the
# image exposes and its health check calls); the runtime stage installs the tools the
# server calls, runs as a non-root user and has a HEALTHCHECK. Running the image is
# tests/deploy/container.sh (by hand, with podman).
# Needs python3 with PyYAML and a built binary (SPORTELLO_BIN, default
# $CARGO_TARGET_DIR/debug/sportello).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SPORTELLO_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/sportello}"
[ -x "$bin" ] || { echo "compose.sh: no sportello binary at $bin (cargo build -p sportello)" >&2; exit 2; }
exec python3 - "$root" "$bin" <<'PY'
import os, re, subprocess, sys, tempfile
import yaml

root, binary = sys.argv[1], sys.argv[2]
problems, checks = [], 0

def check(ok, message):
    global checks
    checks += 1
    if not ok:
        problems.append(message)
    return ok

def config_check(env, what):
    """`sportello config check` in an empty folder with only `env` set: its output."""
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run([binary, "config", "check"], cwd=folder, capture_output=True, text=True,
                             env={"PATH": os.environ["PATH"], **env})
    check(run.returncode == 0, f"{what}: config check exit {run.returncode}: {run.stderr.strip()}")
    return run.stdout

# compose.yaml: the sportello service's environment, secrets filled with stand-ins.
compose = yaml.safe_load(open(os.path.join(root, "compose.yaml"), encoding="utf-8"))
services = compose.get("services", {})
check({"sportello", "db", "s3"} <= set(services), "compose.yaml needs the services sportello, db and s3")
app = services.get("sportello", {})
def fill(value):
    return re.sub(r"\$\{(\w+)(:?[-?][^}]*)?\}",
                  lambda m: {"POSTGRES_PASSWORD": "pw", "S3_ACCESS_KEY": "ak", "S3_SECRET_KEY": "sk"}.get(
                      m.group(1), (m.group(2) or ":-")[2:] if (m.group(2) or "").startswith(":-") else "x"),
                  str(value))
env = {k: fill(v) for k, v in (app.get("environment") or {}).items()}
out = config_check(env, "compose.yaml's environment")
check('url = "postgres://sportello:***@db:5432/sportello"' in out, "compose: the database is not the db service")
check('url = "s3://sportello-documents/production"' in out and 'endpoint = "http://s3:8333"' in out,
      "compose: documents are not in the s3 service's bucket")
check('"10.0.0.0/8"' in out, "compose: trusted_proxies was not taken")
check(any(str(v).startswith("sportello-data:/data") for v in app.get("volumes", [])), "compose: /data is not a volume")
check(app.get("depends_on", {}).get("db", {}).get("condition") == "service_healthy", "compose: sportello must wait for a healthy db")
check(services.get("db", {}).get("environment", {}).get("POSTGRES_PASSWORD", "").startswith("${POSTGRES_PASSWORD:?"),
      "compose: the database password must come from .env")
bucket = " ".join(services.get("s3-bucket", {}).get("command", []))
check("s3.bucket.create -name sportello-documents" in bucket, "compose: the bucket is not created")

# Containerfile: the runtime stage.
text = open(os.path.join(root, "Containerfile"), encoding="utf-8").read()
runtime = text[text.index("AS runtime"):]
for package in ("tesseract-ocr", "tesseract-ocr-ita", "poppler-utils", "libtiff-tools", "libssl3", "curl"):
    check(re.search(rf"\s{re.escape(package)}(\s|$)", runtime) is not None, f"Containerfile: runtime stage lacks {package}")
user = re.search(r"^USER\s+(\S+)", runtime, re.M)
check(user is not None and not user.group(1).startswith(("root", "0")), "Containerfile: the runtime must not run as root")
check(re.search(r'^VOLUME \["/data"\]', runtime, re.M) is not None, "Containerfile: no /data volume")
check(re.search(r"^HEALTHCHECK .*\n?.*?/healthz", runtime, re.M) is not None, "Containerfile: no HEALTHCHECK on /healthz")
envs = dict(re.findall(r"(SPORTELLO_\w+)=(\S+)", runtime))
out = config_check(envs, "the Containerfile's ENV")
check('data_dir = "/data"' in out, "Containerfile: data_dir is not /data")
port = envs.get("SPORTELLO_LISTEN", "").rsplit(":", 1)[-1]
check(re.search(rf"^EXPOSE {port}$", runtime, re.M) is not None, f"Containerfile: EXPOSE does not match the listen port {port}")

for p in problems:
    print(f"compose.sh: {p}", file=sys.stderr)
print(f"container set-up: {checks - len(problems)} passed, {len(problems)} failed")
sys.exit(1 if problems else 0)
PY
