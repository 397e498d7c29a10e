#!/usr/bin/env bash
# Install SPM Orchestrator on an Ubuntu 24.04 VM as a systemd service. Run as root from a checkout.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
dest=/opt/spm-orchestrator

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 24 ]; then
  echo "install: Node >= 24 is required at /usr/bin/node (NodeSource or distribution package)" >&2
  exit 1
fi
id spm-orch >/dev/null 2>&1 || useradd --system --home-dir "$dest" --shell /usr/sbin/nologin spm-orch
install -d -m 0755 "$dest"
cp -a "$src"/{package.json,package-lock.json,src,sql,salt-states,systemd,bin,README.md} "$dest"/
(cd "$dest" && npm ci --omit=dev --no-audit --no-fund)
install -d -m 0750 -o root -g spm-orch /etc/spm-orchestrator
[ -f /etc/spm-orchestrator/env ] || install -m 0640 -o root -g spm-orch "$src/.env.example" /etc/spm-orchestrator/env
install -m 0644 "$dest/systemd/spm-orchestrator.service" /etc/systemd/system/spm-orchestrator.service
systemctl daemon-reload
echo "Edit /etc/spm-orchestrator/env, then: sudo -u spm-orch node $dest/src/main.ts doctor && systemctl enable --now spm-orchestrator"
