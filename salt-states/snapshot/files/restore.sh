#!/bin/bash
# spm.snapshot.restore: bring a test system back to an orchestrator snapshot (salt-states/README.md).
# Run by the state spm_snapshot_restore (cmd.script) with:
#   SPM_KEY              effect key of the snapshot to restore (its description is "spm-orchestrator <key>"), or
#   SPM_SNAPSHOT         the snapshot number (wins over SPM_KEY)
#   SPM_SNAPPER_CONFIG   snapper configuration (default root)
#   SPM_RESTORE_METHOD   rollback (default; btrfs root, takes effect at the next boot) or
#                        undochange (reverts the files changed since the snapshot, in place)
# Prints key=value lines on stdout: snapshot=<number>, method=<method>, takes_effect=after_reboot|now.
# snapper's own output goes to stderr. Nothing here reboots: the orchestrator schedules the reboot.
set -euo pipefail

prefix='spm-orchestrator '
config=${SPM_SNAPPER_CONFIG:-root}
key=${SPM_KEY:-}
number=${SPM_SNAPSHOT:-}
method=${SPM_RESTORE_METHOD:-rollback}

command -v snapper >/dev/null 2>&1 || { echo "snapper is not installed on this system" >&2; exit 3; }

if [ -z "$number" ]; then
  if [ -z "$key" ]; then
    echo "either SPM_SNAPSHOT (pillar spm:snapshot:number) or SPM_KEY (pillar spm:snapshot:key) is required" >&2
    exit 2
  fi
  desc="$prefix$key"
  listing=$(snapper --csvout -c "$config" list --columns number,description)
  number=$(printf '%s\n' "$listing" | awk -F, -v d="$desc" 'NR > 1 && $2 == d { n = $1 } END { if (n != "") print n }')
  if [ -z "$number" ]; then
    echo "no snapshot with description '$desc' in snapper config $config" >&2
    exit 4
  fi
fi
case $number in
  '' | *[!0-9]* | 0)
    echo "not a snapshot number: $number" >&2
    exit 2
    ;;
esac

case $method in
  rollback)
    snapper -c "$config" rollback "$number" >&2
    printf 'snapshot=%s\nmethod=rollback\ntakes_effect=after_reboot\n' "$number"
    ;;
  undochange)
    snapper -c "$config" undochange "$number..0" >&2
    printf 'snapshot=%s\nmethod=undochange\ntakes_effect=now\n' "$number"
    ;;
  *)
    echo "unknown restore method '$method' (rollback or undochange)" >&2
    exit 2
    ;;
esac
