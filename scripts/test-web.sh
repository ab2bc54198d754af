#!/usr/bin/env bash
# The dashboard's browser test: Debian's chromium driven by the playwright-core
# version pinned in tests/web/package.json, against a real jobqd ($JOBQD),
# with the pinned axe-core checking every page's accessibility.
# Nothing downloads a browser: playwright-core has none to fetch, and the
# browser is /usr/bin/chromium (apt-get install chromium; scripts/deps.sh).
#
# The only network access is `npm ci` (npm registry) the first time, when
# tests/web/node_modules is missing.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$script_dir/.." && pwd)
web_dir=$root/tests/web

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export PLAYWRIGHT_BROWSERS_PATH=0
export DO_NOT_TRACK=1
export NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false

die() {
    echo "test-web: $*" >&2
    exit 1
}

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || die "$chromium is missing: apt-get install chromium (scripts/deps.sh test does it as root)"
command -v node >/dev/null 2>&1 || die "node not found: apt-get install nodejs npm"

if [ ! -f "$web_dir/node_modules/playwright-core/package.json" ] ||
   [ ! -f "$web_dir/node_modules/axe-core/axe.min.js" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found: apt-get install nodejs npm"
    echo "test-web: installing the pinned playwright-core and axe-core (npm ci) in tests/web" >&2
    (cd "$web_dir" && npm ci --no-audit --no-fund)
fi

cd "$root"
JOBQD=${JOBQD:-build/jobqd-test} CHROMIUM=$chromium OUT_DIR=${OUT_DIR:-build/test-output} \
    node "$web_dir/dashboard_test.js"
