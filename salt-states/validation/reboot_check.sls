{#-
  spm.validation.reboot_check: does this system need a reboot? Never reboots.

  Grains: os_family Debian (Ubuntu, Debian): the flag file /var/run/reboot-required (with the
  packages that asked for it in /var/run/reboot-required.pkgs). The flag is an Ubuntu convention
  (update-notifier-common) that a Debian system may never write, so this branch also compares the
  running kernel with the newest /boot/vmlinuz-*. os_family RedHat (RHEL 9): `needs-restarting -r`
  (dnf-utils), or `dnf needs-restarting -r` (dnf-plugins-core) when the former is not installed.

  State id: spm_reboot_check
    cmd.run                     stdout: reboot_required=yes|no (Debian family also reason=, running_kernel=
                                and package= lines);
                                result false only when the check itself could not run.
    test.fail_without_changes   any other os_family.
-#}
{%- set family = grains['os_family'] | string %}
{%- if family == 'Debian' %}
spm_reboot_check:
  cmd.run:
    - name: |
        reasons=()
        [ -e "$SPM_REBOOT_REQUIRED_FILE" ] && reasons+=(flag_file)
        running=$(uname -r)
        newest=$(for f in "$SPM_BOOT_DIR"/vmlinuz-*; do [ -e "$f" ] && echo "${f##*/vmlinuz-}"; done | sort -V | tail -n 1)
        if [ -n "$newest" ] && [ "$newest" != "$running" ] && [ "$(printf '%s\n%s\n' "$running" "$newest" | sort -V | tail -n 1)" = "$newest" ]; then
          reasons+=("newer_kernel:$newest")
        fi
        if [ -n "${reasons[*]}" ]; then echo reboot_required=yes; else echo reboot_required=no; fi
        for r in "${reasons[@]}"; do echo "reason=$r"; done
        echo "running_kernel=$running"
        if [ -r "$SPM_REBOOT_REQUIRED_FILE.pkgs" ]; then sort -u "$SPM_REBOOT_REQUIRED_FILE.pkgs" | sed 's/^/package=/'; fi
    - shell: /bin/bash
    - env:
      - SPM_REBOOT_REQUIRED_FILE: /var/run/reboot-required
      - SPM_BOOT_DIR: /boot
{%- elif family == 'RedHat' %}
spm_reboot_check:
  cmd.run:
    - name: |
        if command -v needs-restarting >/dev/null 2>&1; then
          needs-restarting -r >&2; rc=$?
        elif command -v dnf >/dev/null 2>&1; then
          dnf -q needs-restarting -r >&2; rc=$?
        else
          echo "needs-restarting is not installed: install dnf-utils" >&2; exit 2
        fi
        case $rc in
          0) echo reboot_required=no ;;
          1) echo reboot_required=yes ;;
          *) echo "needs-restarting -r exited $rc" >&2; exit "$rc" ;;
        esac
    - shell: /bin/bash
{%- else %}
spm_reboot_check:
  test.fail_without_changes:
    - name: {{ ('spm.validation.reboot_check: os_family ' ~ family ~ ' is not supported (Debian and RedHat families only)') | json }}
    - comment: {{ ('os_family ' ~ family ~ ' is not supported (Debian and RedHat families only)') | json }}
{%- endif %}
