{#-
  spm.validation.service_check: are the services the pillar lists active? Never starts anything.

  Pillar (salt-states/README.md):
    spm:services   list of systemd unit names, e.g. [ssh, cron, nginx.service]

  State ids:
    spm_service_<unit>               cmd.run `systemctl is-active <unit>`: result true when active;
                                     stdout is the unit's state (active, failed, inactive, activating…).
    spm_service_invalid_<n>          test.fail_without_changes: the n-th entry is not a unit name.
    spm_service_check                test.succeed_without_changes: the list is empty.
-#}
{%- set services = salt['pillar.get']('spm:services', []) %}
{%- if services is string %}{% set services = [services] %}{% endif %}
{%- if services | length == 0 %}
spm_service_check:
  test.succeed_without_changes:
    - name: 'spm.validation.service_check: no services listed in pillar spm:services'
    - comment: 'no services listed in pillar spm:services'
{%- endif %}
{%- for svc in services %}
{%-   set unit = svc | string %}
{%-   if unit | regex_match('^([A-Za-z0-9:_.@-]+)$') %}
{{ ('spm_service_' ~ unit) | json }}:
  cmd.run:
    - name: {{ ('systemctl is-active ' ~ (unit | quote)) | json }}
    - shell: /bin/bash
{%-   else %}
{{ ('spm_service_invalid_' ~ loop.index) | json }}:
  test.fail_without_changes:
    - name: {{ ('spm.validation.service_check: entry ' ~ loop.index ~ ' of spm:services is not a unit name: ' ~ unit) | json }}
    - comment: {{ ('not a systemd unit name: ' ~ unit) | json }}
{%-   endif %}
{%- endfor %}
