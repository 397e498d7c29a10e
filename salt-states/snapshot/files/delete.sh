#!/bin/bash
# spm.snapshot.delete: delete orchestrator snapshots, on request and by retention (salt-states/README.md).
# Run by the state spm_snapshot_delete (cmd.script) with:
#   SPM_SNAPPER_CONFIG  snapper configuration (default root)
#   SPM_DELETE_KEYS     effect keys (space-separated) whose snapshots are deleted now (entries that are final)
#   SPM_KEEP_KEYS       effect keys (space-separated) never deleted (entries still in flight)
#   SPM_MAX_COUNT       keep at most this many orchestrator snapshots, newest first (0 = no limit)
#   SPM_MAX_AGE_DAYS    delete orchestrator snapshots older than this (0 = no limit)
# Only snapshots whose description starts with "spm-orchestrator " are ever considered: the
# system's own snapshots (apt/dnf plugins, timeline, rollbacks) are left to snapper.
# Order of the rules, for each orchestrator snapshot: a kept key is kept; a requested key is deleted;
# older than the age limit is deleted; beyond the count is deleted (kept keys count towards it).
# Prints key=value lines on stdout: deleted=<numbers>, kept=<numbers>, failed=<numbers>, and one
# snapshot_<n>=<deleted|kept|failed>:<reason> line per orchestrator snapshot. Exit 1 if a delete failed.
set -euo pipefail

prefix='spm-orchestrator '
config=${SPM_SNAPPER_CONFIG:-root}
max_count=${SPM_MAX_COUNT:-0}
max_age_days=${SPM_MAX_AGE_DAYS:-0}
delete_keys=${SPM_DELETE_KEYS:-}
keep_keys=${SPM_KEEP_KEYS:-}

for n in "$max_count" "$max_age_days"; do
  case $n in
    '' | *[!0-9]*) echo "SPM_MAX_COUNT and SPM_MAX_AGE_DAYS must be whole numbers, got '$n'" >&2; exit 2 ;;
  esac
done
command -v snapper >/dev/null 2>&1 || { echo "snapper is not installed on this system" >&2; exit 3; }

# Snapper prints dates as "%F %T" in machine-readable output; --utc makes them UTC, so a string
# comparison with a UTC cutoff is a date comparison.
cutoff=''
if [ "$max_age_days" -gt 0 ]; then
  cutoff=$(date -u -d "@$(( $(date -u +%s) - max_age_days * 86400 ))" '+%Y-%m-%d %H:%M:%S')
fi
listing=$(snapper --utc --csvout -c "$config" list --columns number,date,description)

plan=$(printf '%s\n' "$listing" | awk -F, -v prefix="$prefix" -v cutoff="$cutoff" -v max="$max_count" \
  -v del="$delete_keys" -v keep="$keep_keys" '
  BEGIN {
    n = split(del, a, " "); for (i = 1; i <= n; i++) requested[a[i]] = 1
    n = split(keep, a, " "); for (i = 1; i <= n; i++) protected[a[i]] = 1
  }
  NR > 1 && $1 ~ /^[0-9]+$/ && index($3, prefix) == 1 {
    c++; num[c] = $1 + 0; date[c] = $2; key[c] = substr($3, length(prefix) + 1)
  }
  END {
    # newest first (snapper numbers only grow)
    for (i = 2; i <= c; i++) for (j = i; j > 1 && num[j] > num[j - 1]; j--) {
      t = num[j]; num[j] = num[j - 1]; num[j - 1] = t
      t = date[j]; date[j] = date[j - 1]; date[j - 1] = t
      t = key[j]; key[j] = key[j - 1]; key[j - 1] = t
    }
    kept = 0
    for (i = 1; i <= c; i++) if (key[i] in protected) kept++
    for (i = 1; i <= c; i++) {
      k = key[i]
      if (k in protected) print "keep", num[i], (k in requested) ? "protected_and_requested" : "protected"
      else if (k in requested) print "delete", num[i], "requested"
      else if (cutoff != "" && date[i] < cutoff) print "delete", num[i], "age"
      else if (max > 0 && kept >= max) print "delete", num[i], "count"
      else { kept++; print "keep", num[i], "retained" }
    }
  }')

deleted=() kept=() failed=() lines=()
while read -r action number reason; do
  [ -n "$action" ] || continue
  if [ "$action" = keep ]; then
    kept+=("$number"); lines+=("snapshot_$number=kept:$reason")
  elif snapper -c "$config" delete "$number" >&2; then
    deleted+=("$number"); lines+=("snapshot_$number=deleted:$reason")
  else
    failed+=("$number"); lines+=("snapshot_$number=failed:$reason")
  fi
done <<<"$plan"

printf 'deleted=%s\nkept=%s\nfailed=%s\n' "${deleted[*]}" "${kept[*]}" "${failed[*]}"
[ "${#lines[@]}" -eq 0 ] || printf '%s\n' "${lines[@]}"
[ "${#failed[@]}" -eq 0 ]
