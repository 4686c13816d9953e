#!/bin/sh
# After cgirun is installed or upgraded. On Debian the socket is enabled
# and started, as fcgiwrap's package does with its own, so that nginx's
# fastcgi_pass unix:/run/fcgiwrap.socket keeps working; a socket the
# administrator disabled stays disabled (deb-systemd-helper remembers), and
# an upgrade restarts a running runner. On other systems (rpm), enabling is
# left to the administrator: systemctl enable --now cgirun-fcgi.socket
set -e
if [ "$1" = configure ] && command -v deb-systemd-helper >/dev/null 2>&1; then
	deb-systemd-helper unmask cgirun-fcgi.socket >/dev/null || true
	if deb-systemd-helper --quiet was-enabled cgirun-fcgi.socket; then
		deb-systemd-helper enable cgirun-fcgi.socket >/dev/null || true
	else
		deb-systemd-helper update-state cgirun-fcgi.socket >/dev/null || true
	fi
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if systemctl --quiet is-enabled cgirun-fcgi.socket 2>/dev/null; then
		systemctl start cgirun-fcgi.socket || true
	fi
	systemctl try-restart cgirun-fcgi.service >/dev/null 2>&1 || true
fi
exit 0
