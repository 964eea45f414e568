#!/usr/bin/env bash
# Lints the deployment files (CI runs this from .ci/run); exits non-zero on any finding:
#   Dockerfile           hadolint, every severity
#   deploy/kubernetes/   yamllint (strict), then each manifest and the kustomization as rendered
#                        by `kubectl kustomize` validated with kubernetes-validate --strict
#                        against the Kubernetes versions below (schemas bundled: works offline)
#   consistency          the Dockerfile's Rust tag is rust-toolchain.toml's channel; the batch
#                        Job's `completions` is the shard count in its `--shard` argument
# The tools are pinned in deploy/requirements.txt and live in a venv outside the clone,
# /var/tmp/emotrack-deploy-tools (or $EMOTRACK_DEPLOY_TOOLS), reused while the pins are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest version the manifests claim (backoffLimitPerIndex needs 1.29) and the newest known.
k8s_versions=(1.29.0 1.37.0)
venv="${EMOTRACK_DEPLOY_TOOLS:-/var/tmp/emotrack-deploy-tools}"
stamp="$venv/emotrack-deploy-tools.stamp"
want="$({ python3 --version; cat deploy/requirements.txt; } | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "check-deploy: installing the linters in $venv (deploy/requirements.txt)" >&2
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt
  echo "$want" >"$stamp"
fi
bin="$venv/bin"
failed=0
fail() { echo "check-deploy: $*" >&2; failed=1; }

echo "== hadolint $("$bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
"$bin/hadolint" --no-color --failure-threshold style Dockerfile || fail "hadolint found problems in Dockerfile"

echo "== yamllint: deploy/kubernetes"
"$bin/yamllint" --strict \
  -d '{extends: default, rules: {line-length: {max: 100}, document-start: disable}}' \
  deploy/kubernetes || fail "yamllint found problems in deploy/kubernetes"

# kubernetes-validate passes, with only a WARN line, a resource whose schema it does not know
# (a misspelt kind or apiVersion): any line but INFO counts as a failure here.
validate() { # validate FILE [NAME to show]
  local out
  out="$("$bin/kubernetes-validate" --strict "${k8s_versions[@]/#/-k}" "$1" 2>&1)" || true
  echo "${out//"$1"/${2:-$1}}"
  if echo "$out" | grep -qv '^INFO '; then fail "${2:-$1} did not validate"; fi
}
echo "== kubernetes-validate $("$bin/kubernetes-validate" --version): against ${k8s_versions[*]}"
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || validate "$f"
done
# What `kubectl apply -k` would send. kubectl comes with this kind of machine (its kustomize is
# built in and needs no cluster); without it the files above were still validated one by one.
if command -v kubectl >/dev/null; then
  rendered="$(mktemp --suffix=.yaml)"
  trap 'rm -f "$rendered"' EXIT
  if kubectl kustomize deploy/kubernetes >"$rendered"; then
    validate "$rendered" "kubectl-kustomize(deploy/kubernetes)"
  else
    fail "kubectl kustomize deploy/kubernetes failed"
  fi
else
  echo "SKIPPED: kubectl not found, so the kustomization was not rendered"
fi

echo "== consistency"
channel="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
tag="$(sed -n 's/^FROM rust:\([^ -]*\)-.* AS build$/\1/p' Dockerfile)"
if [ -z "$channel" ] || [ "$tag" != "$channel" ]; then
  fail "Dockerfile builds with rust:${tag:-?}, rust-toolchain.toml pins ${channel:-?}: make them equal"
fi
"$bin/python" - deploy/kubernetes/batch-job.yaml <<'PY' || fail "batch-job.yaml: completions and --shard disagree"
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
args = job["spec"]["template"]["spec"]["containers"][0]["args"]
shards = args[args.index("--shard") + 1].rsplit("/", 1)[1]
completions = job["spec"]["completions"]
print(f"{sys.argv[1]}: completions {completions}, --shard .../{shards}")
sys.exit(0 if str(completions) == shards else 1)
PY
echo "Dockerfile: rust:$tag, rust-toolchain.toml: $channel"

if [ "$failed" != 0 ]; then
  echo "check-deploy: FAILED" >&2
  exit 1
fi
echo "deployment checks passed"
