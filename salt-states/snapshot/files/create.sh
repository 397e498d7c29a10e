#!/bin/bash
# spm.snapshot.create: one snapper snapshot per orchestrator effect key (salt-states/README.md).
# Run by the state spm_snapshot_create (cmd.script) with:
#   SPM_KEY              the effect key, e.g. 7:1:snapshot (required)
#   SPM_SNAPPER_CONFIG   snapper configuration (default root)
#   SPM_CLEANUP_ALGORITHM snapper cleanup algorithm (default number; empty = none)
# The snapshot's description is "spm-orchestrator <key>", the same description the orchestrator's
# Salt client looks for, so a retried effect finds the snapshot instead of taking a second one.
# Prints one key=value a line on stdout: snapshot=<number> and created=yes|no.
set -euo pipefail

prefix='spm-orchestrator '
config=${SPM_SNAPPER_CONFIG:-root}
key=${SPM_KEY:-}
cleanup=${SPM_CLEANUP_ALGORITHM-number}

if [ -z "$key" ]; then
  echo "SPM_KEY (pillar spm:snapshot:key) is required" >&2
  exit 2
fi
# Effect keys are entry:attempt:step[#round]. Anything else (a comma, a quote, a space) would be
# quoted in snapper's CSV listing and never be found again.
case $key in
  *[!A-Za-z0-9:#_.@-]*)
    echo "effect key has characters outside [A-Za-z0-9:#_.@-]: $key" >&2
    exit 2
    ;;
esac
command -v snapper >/dev/null 2>&1 || { echo "snapper is not installed on this system" >&2; exit 3; }

desc="$prefix$key"
# CSV (RFC 4180, header line first); our descriptions never need quoting.
listing=$(snapper --csvout -c "$config" list --columns number,description)
existing=$(printf '%s\n' "$listing" | awk -F, -v d="$desc" 'NR > 1 && $2 == d { n = $1 } END { if (n != "") print n }')
if [ -n "$existing" ]; then
  printf 'snapshot=%s\ncreated=no\n' "$existing"
  exit 0
fi

args=(-c "$config" create --type single --description "$desc" --print-number)
[ -n "$cleanup" ] && args+=(--cleanup-algorithm "$cleanup")
number=$(snapper "${args[@]}")
case $number in
  '' | *[!0-9]*)
    echo "snapper create did not print a snapshot number: $number" >&2
    exit 1
    ;;
esac
printf 'snapshot=%s\ncreated=yes\n' "$number"
