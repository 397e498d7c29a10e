{#-
  spm.snapshot.delete: delete orchestrator snapshots on request and by a retention policy.
  Only snapshots described "spm-orchestrator <key>" are considered; the system's own are left alone.

  Pillar (salt-states/README.md):
    spm:snapshot:config                    snapper configuration (default: root)
    spm:snapshot:delete_keys               effect keys whose snapshots go now (passed with the call)
    spm:snapshot:keep_keys                 effect keys never deleted (entries in flight; passed with the call)
    spm:snapshot:retention:max_count       keep at most this many, newest first (default 10; 0 = no limit)
    spm:snapshot:retention:max_age_days    delete those older than this (default 14; 0 = no limit)

  State id: spm_snapshot_delete
    cmd.script   salt://<this dir>/files/delete.sh; stdout: deleted=<n …>, kept=<n …>, failed=<n …>,
                 and snapshot_<n>=<deleted|kept|failed>:<reason> per orchestrator snapshot.
-#}
{%- set config = salt['pillar.get']('spm:snapshot:config', 'root') | string %}
{%- set delete_keys = salt['pillar.get']('spm:snapshot:delete_keys', []) %}
{%- set keep_keys = salt['pillar.get']('spm:snapshot:keep_keys', []) %}
{%- if delete_keys is string %}{% set delete_keys = [delete_keys] %}{% endif %}
{%- if keep_keys is string %}{% set keep_keys = [keep_keys] %}{% endif %}
{%- set max_count = salt['pillar.get']('spm:snapshot:retention:max_count', 10) | int(0) %}
{%- set max_age_days = salt['pillar.get']('spm:snapshot:retention:max_age_days', 14) | int(0) %}
spm_snapshot_delete:
  cmd.script:
    - name: {{ ('salt://' ~ slspath ~ '/files/delete.sh') | json }}
    - shell: /bin/bash
    - env:
      - SPM_SNAPPER_CONFIG: {{ config | json }}
      - SPM_DELETE_KEYS: {{ delete_keys | join(' ') | json }}
      - SPM_KEEP_KEYS: {{ keep_keys | join(' ') | json }}
      - SPM_MAX_COUNT: {{ max_count | string | json }}
      - SPM_MAX_AGE_DAYS: {{ max_age_days | string | json }}
