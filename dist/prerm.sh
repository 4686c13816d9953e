#!/bin/sh
# Before cgirun is removed (not upgraded): stop its units, so that no
# runner, program of cgirun@.service or socket file is left, and disable
# them.
set -e
case "$1" in
remove | deconfigure | 0) ;; # deb; rpm passes 0 when no version stays
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl stop cgirun-fcgi.socket cgirun-fcgi.service 'cgirun@*.socket' 'cgirun@*.service' >/dev/null 2>&1 || true
fi
if command -v deb-systemd-helper >/dev/null 2>&1; then
	deb-systemd-helper purge cgirun-fcgi.socket >/dev/null || true
elif command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload disable cgirun-fcgi.socket >/dev/null 2>&1 || true
fi
exit 0
