{#-
  spm.snapshot.restore: bring the system back to an orchestrator snapshot.

  Pillar (salt-states/README.md):
    spm:snapshot:key             effect key of the snapshot to restore, or
    spm:snapshot:number          its snapper number (wins over the key)
    spm:snapshot:config          snapper configuration (default: root)
    spm:snapshot:restore_method  rollback (default: btrfs root, takes effect at the next boot) or
                                 undochange (reverts the changed files in place)

  State id: spm_snapshot_restore
    cmd.script                  salt://<this dir>/files/restore.sh; stdout: snapshot=<n>, method=…,
                                takes_effect=after_reboot|now. It never reboots: the orchestrator does.
    test.fail_without_changes   when neither the key nor the number is given.
-#}
{%- set key = salt['pillar.get']('spm:snapshot:key', '') | string %}
{%- set number = salt['pillar.get']('spm:snapshot:number', '') | string %}
{%- set config = salt['pillar.get']('spm:snapshot:config', 'root') | string %}
{%- set method = salt['pillar.get']('spm:snapshot:restore_method', 'rollback') | string %}
{%- if key == '' and number == '' %}
spm_snapshot_restore:
  test.fail_without_changes:
    - name: 'spm.snapshot.restore: pillar spm:snapshot:key or spm:snapshot:number is required'
    - comment: 'pillar spm:snapshot:key or spm:snapshot:number is required'
{%- else %}
spm_snapshot_restore:
  cmd.script:
    - name: {{ ('salt://' ~ slspath ~ '/files/restore.sh') | json }}
    - shell: /bin/bash
    - env:
      - SPM_KEY: {{ key | json }}
      - SPM_SNAPSHOT: {{ number | json }}
      - SPM_SNAPPER_CONFIG: {{ config | json }}
      - SPM_RESTORE_METHOD: {{ method | json }}
{%- endif %}
