{#-
  spm.healthcheck: the application checks a team lists in pillar, one state per check. The
  orchestrator reads each check's result from the state.apply return; a failed check fails the test.

  Pillar (salt-states/README.md): spm:healthchecks, a mapping name -> check (pillar files of several
  teams merge). Names: letters, digits, '_', '.', '-'. Checks run in name order.
    type: http     url (required), status (default 200), match (text the body must contain),
                   method (default GET), verify_ssl (default true), wait_for (seconds to keep
                   retrying until it passes; default: one try)
    type: tcp      port (required), host (default 127.0.0.1), timeout (seconds, default 5)
    type: command  command (required; run by /bin/bash, passes on exit 0), timeout (seconds,
                   default 60), runas (default root), cwd (default /)

  State ids:
    spm_healthcheck_<name>          http.query (http), cmd.run (tcp, command), or
                                    test.fail_without_changes when the check is misconfigured
    spm_healthcheck_invalid_<n>     test.fail_without_changes: the n-th name is not a valid name
    spm_healthcheck                 test.succeed_without_changes: no checks configured
-#}
{%- set checks = salt['pillar.get']('spm:healthchecks', {}) %}
{%- if checks is not mapping or checks | length == 0 %}
spm_healthcheck:
  test.succeed_without_changes:
    - name: 'spm.healthcheck: no checks in pillar spm:healthchecks'
    - comment: 'no checks in pillar spm:healthchecks'
{%- else %}
{%-   for name, check in checks | dictsort %}
{%-     set label = name | string %}
{%-     set id = 'spm_healthcheck_' ~ label %}
{%-     set kind = (check.type | default('') | string) if check is mapping else '' %}
{%-     if not (label | regex_match('^([A-Za-z0-9_.-]+)$')) %}
{{ ('spm_healthcheck_invalid_' ~ loop.index) | json }}:
  test.fail_without_changes:
    - name: {{ ('spm.healthcheck: check name ' ~ label ~ ' is invalid (letters, digits, _ . - only)') | json }}
    - comment: {{ ('check name ' ~ label ~ ' is invalid (letters, digits, _ . - only)') | json }}
{%-     elif kind == 'http' and check.url is defined %}
{{ id | json }}:
  http.query:
    - name: {{ check.url | string | json }}
    - status: {{ check.status | default(200) | int(0) }}
{%-       if check.match is defined %}
    - match: {{ check.match | string | json }}
{%-       endif %}
    - method: {{ check.method | default('GET') | string | json }}
    - verify_ssl: {{ 'false' if (check.verify_ssl is defined and not check.verify_ssl) else 'true' }}
{%-       if check.wait_for is defined %}
    - wait_for: {{ check.wait_for | int(0) }}
{%-       endif %}
{%-     elif kind == 'tcp' and check.port is defined and (check.port | int(0)) > 0 and (check.port | int(0)) < 65536 %}
{%-       set host = check.host | default('127.0.0.1') | string %}
{%-       set probe = 'exec 3<>/dev/tcp/' ~ (host | quote) ~ '/' ~ (check.port | int(0)) %}
{{ id | json }}:
  cmd.run:
    - name: {{ ('timeout ' ~ (check.timeout | default(5) | int(0)) ~ ' bash -c ' ~ (probe | quote)) | json }}
    - shell: /bin/bash
{%-     elif kind == 'command' and check.command is defined %}
{{ id | json }}:
  cmd.run:
    - name: {{ check.command | string | json }}
    - shell: /bin/bash
    - timeout: {{ check.timeout | default(60) | int(0) }}
    - cwd: {{ check.cwd | default('/') | string | json }}
{%-       if check.runas is defined %}
    - runas: {{ check.runas | string | json }}
{%-       endif %}
{%-     else %}
{{ id | json }}:
  test.fail_without_changes:
    - name: {{ ('spm.healthcheck: check ' ~ label ~ ' is misconfigured: needs type http with url, tcp with port 1-65535, or command with command') | json }}
    - comment: {{ ('misconfigured: needs type http with url, tcp with port 1-65535, or command with command (got type ' ~ (kind or 'none') ~ ')') | json }}
{%-     endif %}
{%-   endfor %}
{%- endif %}
