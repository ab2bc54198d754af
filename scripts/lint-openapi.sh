#!/usr/bin/env bash
# Lint openapi.yaml with the @redocly/cli version pinned in tests/openapi/package.json,
# using the rules in tests/openapi/redocly.yaml. Exits non-zero on any lint problem
# (error or warning), on a broken config, and on external refs or hosts in the document.
#
# The only network access is `npm ci` (npm registry) the first time, when
# tests/openapi/node_modules is missing. The linter itself runs with telemetry and
# update checks off.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$script_dir/.." && pwd)
lint_dir=$root/tests/openapi
spec=$root/openapi.yaml
config=$lint_dir/redocly.yaml
redocly=$lint_dir/node_modules/.bin/redocly

# No telemetry, no update checks or notices, from redocly or npm.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_NOTIFICATIONS=true
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export DO_NOT_TRACK=1
export NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false

die() {
    echo "lint-openapi: $*" >&2
    exit 1
}

ensure_npm() {
    command -v npm >/dev/null 2>&1 && return 0
    echo "lint-openapi: npm not found; install Node.js and npm: apt-get install nodejs npm" >&2
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "lint-openapi: running as root, installing them with apt-get" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
    fi
    command -v npm >/dev/null 2>&1 || die "npm is still missing: apt-get install nodejs npm"
}

# The pinned @redocly/cli 1.34 needs Node.js >= 18.17 (Debian 12 ships 18.19).
check_node() {
    command -v node >/dev/null 2>&1 || die "node not found: apt-get install nodejs npm"
    local v major minor
    v=$(node -p 'process.versions.node')
    major=${v%%.*}
    minor=${v#*.}
    minor=${minor%%.*}
    if [ "$major" -lt 18 ] || { [ "$major" -eq 18 ] && [ "$minor" -lt 17 ]; }; then
        die "Node.js $v is too old for the pinned @redocly/cli: need >= 18.17"
    fi
}

[ -f "$spec" ] || die "missing $spec"
[ -f "$config" ] || die "missing $config"

if [ ! -x "$redocly" ]; then
    ensure_npm
    echo "lint-openapi: installing the pinned linter (npm ci) in tests/openapi" >&2
    (cd "$lint_dir" && npm ci --no-audit --no-fund)
fi
[ -x "$redocly" ] || die "$redocly is missing after npm ci"
check_node

status=0

# The document is embedded in jobqd and served as is: it must be self-contained and
# name no host but the default local server.
# shellcheck disable=SC2016 # literal $ref, not an expansion
if grep -nE '\$ref:[[:space:]]*["'"'"']?[^#"'"'"'[:space:]]' "$spec"; then
    echo "lint-openapi: external \$ref above; openapi.yaml must be self-contained" >&2
    status=1
fi
if grep -noE '[A-Za-z][A-Za-z0-9+.-]*://[^[:space:]"'"'"')]*' "$spec" | grep -vE ':https?://127\.0\.0\.1(:[0-9]+)?/?$'; then
    echo "lint-openapi: URL above names a host other than 127.0.0.1" >&2
    status=1
fi

# Human-readable report; exits non-zero on errors (all configured rules are errors).
cd "$lint_dir"
"$redocly" lint --config "$config" --lint-config error "$spec" || status=1

# Redocly exits 0 on warnings; count them too, so that a warning fails the lint.
json=$("$redocly" lint --config "$config" --lint-config error --format json "$spec" 2>/dev/null) || true
# shellcheck disable=SC2016 # JavaScript template literal
counts=$(printf '%s' "$json" | node -e '
let s = "";
process.stdin.on("data", (d) => (s += d)).on("end", () => {
  try {
    const t = JSON.parse(s).totals;
    console.log(`${t.errors} ${t.warnings} ${t.ignored}`);
  } catch (e) {
    console.log("parse-error");
  }
});')
case $counts in
    parse-error | "")
        echo "lint-openapi: could not read the linter's JSON report" >&2
        status=1
        ;;
    *)
        read -r errors warnings ignored <<<"$counts"
        echo "lint-openapi: $errors errors, $warnings warnings ($ignored deliberately ignored, see tests/openapi/.redocly.lint-ignore.yaml)"
        if [ "$errors" -ne 0 ] || [ "$warnings" -ne 0 ]; then
            status=1
        fi
        ;;
esac

exit "$status"
