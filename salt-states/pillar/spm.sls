{#-
  Example pillar for the SPM Orchestrator's states (salt-states/README.md). Copy it into your
  pillar_roots (e.g. /srv/pillar/spm.sls) and target it at the test systems in the pillar top.sls.
  The orchestrator adds the per-call keys itself (spm:snapshot:key, spm:snapshot:number,
  spm:snapshot:delete_keys, spm:snapshot:keep_keys) with `state.apply ... pillar={...}`; Salt
  merges that over this pillar.
-#}
spm:
  snapshot:
    # snapper configuration that covers / (snapper -c <config> ...).
    config: root
    # Cleanup algorithm snapper records on the orchestrator's snapshots ('' = none, leave them to
    # spm.snapshot.delete). With 'number', snapper's own NUMBER_LIMIT may also remove them.
    cleanup_algorithm: number
    # rollback: btrfs root, the system boots into the snapshot at the next reboot (what the
    # orchestrator does after a failed test that needed a reboot). undochange: files reverted in place.
    restore_method: rollback
    # spm.snapshot.delete keeps at most max_count orchestrator snapshots (newest first) and deletes
    # those older than max_age_days; 0 switches a limit off. Snapshots of entries still in flight
    # (spm:snapshot:keep_keys) are never deleted.
    retention:
      max_count: 10
      max_age_days: 14

  # spm.validation.service_check: units that must be active after a patch (systemctl is-active).
  services:
{%- if grains['os_family'] == 'RedHat' %}
    - sshd
    - crond
{%- else %}
    - ssh
    - cron
{%- endif %}

  # spm.healthcheck: a team's own checks, by name. Every check is a state
  # spm_healthcheck_<name>; a failed check fails the test. Other pillar files can add checks under
  # the same mapping (pillar merges mappings).
  healthchecks:
    ssh_port:
      type: tcp
      port: 22
      timeout: 5
    sshd_config:
      # openssh's own configuration test: a patched openssh that cannot read its config fails here.
      type: command
      command: /usr/sbin/sshd -t
      timeout: 30
    # web:
    #   type: http
    #   url: http://127.0.0.1:8080/healthz
    #   status: 200
    #   match: ok
    #   wait_for: 120
