#!/usr/bin/env bash
# scripts/nomad-check.sh — check the Nomad jobs of deploy/nomad (see deploy/nomad/README.md).
#
# Runs the checker's own tests (go test: every broken spec under
# deploy/nomad/check/testdata/broken must fail with its error), then the checker over every
# job file with each var file (dev, prod; prod also with the autoscaler policy). Exits
# non-zero on the first failure; every error is printed as file:line: [rule] message.
# Without `go` on PATH (or at /usr/local/go/bin/go) it prints "skipped: go not found" and
# exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="$(command -v go || true)"
[[ -n $GO || ! -x /usr/local/go/bin/go ]] || GO=/usr/local/go/bin/go
if [[ -z $GO ]]; then
  echo "nomad-check: skipped: go not found"
  exit 0
fi

cd "$ROOT/deploy/nomad"
"$GO" -C check test ./...
bin="$(mktemp -d)/nomad-check"
trap 'rm -rf "$(dirname "$bin")"' EXIT
"$GO" -C check build -o "$bin" .
jobs=(emporium.nomad.hcl scylla.nomad.hcl nats.nomad.hcl redis.nomad.hcl)
"$bin" check -var-file dev.vars.hcl "${jobs[@]}"
"$bin" check -var-file prod.vars.hcl -policy autoscaler/emporium-policy.hcl "${jobs[@]}"
echo "nomad-check: every job passes with dev.vars.hcl and prod.vars.hcl"
