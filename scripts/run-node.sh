#!/usr/bin/env bash
# Run a command with Node >= 24 first on PATH (installs it locally when the machine's node is older).
# npm scripts go through this so that `npm start` / `npm test` work on a fresh machine with Node 20.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-node.sh"
exec "$@"
