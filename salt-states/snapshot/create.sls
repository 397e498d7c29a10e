{#-
  spm.snapshot.create: one snapper snapshot whose description is "spm-orchestrator <effect key>".

  Pillar (salt-states/README.md):
    spm:snapshot:key                the orchestrator's effect key, passed with the call (required)
    spm:snapshot:config             snapper configuration (default: root)
    spm:snapshot:cleanup_algorithm  snapper cleanup algorithm (default: number; '' = none)

  State id: spm_snapshot_create
    cmd.script                  salt://<this dir>/files/create.sh; stdout: snapshot=<n>, created=yes|no.
                                Idempotent: a snapshot with that description already there is reported
                                (created=no), not taken twice.
    test.fail_without_changes   when spm:snapshot:key is missing.
-#}
{%- set key = salt['pillar.get']('spm:snapshot:key', '') | string %}
{%- set config = salt['pillar.get']('spm:snapshot:config', 'root') | string %}
{%- set cleanup = salt['pillar.get']('spm:snapshot:cleanup_algorithm', 'number') | string %}
{%- if key == '' %}
spm_snapshot_create:
  test.fail_without_changes:
    - name: 'spm.snapshot.create: pillar spm:snapshot:key (the effect key) is required'
    - comment: 'pillar spm:snapshot:key (the effect key) is required'
{%- else %}
spm_snapshot_create:
  cmd.script:
    - name: {{ ('salt://' ~ slspath ~ '/files/create.sh') | json }}
    - shell: /bin/bash
    - env:
      - SPM_KEY: {{ key | json }}
      - SPM_SNAPPER_CONFIG: {{ config | json }}
      - SPM_CLEANUP_ALGORITHM: {{ cleanup | json }}
{%- endif %}
