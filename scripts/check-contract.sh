#!/usr/bin/env bash
# The contract test (tests/contract): drives jobqd through a validating proxy
# built on the openapi-backend, ajv and ajv-formats versions pinned in
# tests/contract/package.json, and fails on any request or response outside
# openapi.yaml. Usage: scripts/check-contract.sh JOBQD_BINARY
#
# The only network access is `npm ci` (npm registry) the first time, when
# tests/contract/node_modules is missing; the test itself talks only to
# 127.0.0.1.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$script_dir/.." && pwd)
dir=$root/tests/contract
bin=$(cd -- "$(dirname -- "${1:?usage: check-contract.sh JOBQD_BINARY}")" && pwd)/$(basename -- "$1")

export DO_NOT_TRACK=1
export NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false

die() {
    echo "check-contract: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || die "node not found: apt-get install nodejs npm"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "Node.js $(node -v) is too old: need >= 18"
[ -x "$bin" ] || die "no jobqd at $bin"

if [ ! -d "$dir/node_modules/openapi-backend" ] || [ ! -d "$dir/node_modules/ajv-formats" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found: apt-get install nodejs npm"
    echo "check-contract: installing the pinned validator (npm ci) in tests/contract" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$dir"
exec node contract.js "$bin"
