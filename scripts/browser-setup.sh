# Shared set-up of the browser tests (sourced by scripts/browser-test and scripts/dashboard-test,
# from the repository root). Idempotent: installs only what is missing.
#   - chromium from apt (apt-get update only when the plain install fails)
#   - puppeteer-core from npm into .tools/node (gitignored; drives /usr/bin/chromium, no download)
# Sets $tools to the node tools directory (NODE_PATH="$tools/node_modules").

command -v node >/dev/null || { echo "node not found: install Node.js 18+"; exit 1; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get install -y chromium || { sudo_if_needed apt-get update && sudo_if_needed apt-get install -y chromium; }
fi

tools="$(pwd)/.tools/node"
if [ ! -f "$tools/node_modules/puppeteer-core/package.json" ]; then
  echo "== installing puppeteer-core (npm, into .tools/node)"
  mkdir -p "$tools"
  [ -f "$tools/package.json" ] || echo '{"name": "edetail-test-tools", "private": true}' > "$tools/package.json"
  PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$tools" --no-audit --no-fund --silent puppeteer-core@24
fi
