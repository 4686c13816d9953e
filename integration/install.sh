#!/usr/bin/env bash
# install.sh installs, only when missing, the Debian packages that the
# integration tests (and the benchmarks) need. Run it as root; it needs no
# TTY. `apt-get update` runs once, and only if something is missing.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# package:command pairs; a command is checked with command -v (also in the
# sbin directories, absent from many PATHs), a package without one with
# dpkg -s.
wanted=(
	apache2:apache2
	libapache2-mod-fcgid:
	nginx:nginx
	lighttpd:lighttpd
	fcgiwrap:fcgiwrap
	wrk:wrk
	hyperfine:hyperfine
	python3:python3
	prometheus:prometheus
)

have() {
	local pkg=${1%%:*} cmd=${1#*:}
	if [[ -n $cmd ]]; then
		PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1
	else
		dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'
	fi
}

missing=()
for w in "${wanted[@]}"; do
	have "$w" || missing+=("${w%%:*}")
done
if ((${#missing[@]} == 0)); then
	echo "install.sh: all present"
	exit 0
fi

if ((EUID != 0)); then
	echo "install.sh: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi

echo "install.sh: installing ${missing[*]}"
# Lock::Timeout: wait for another apt (unattended-upgrades) instead of failing.
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"

# The tests start their own servers on free ports and must not meet the
# packages' services. Debian's postinst starts apache2, nginx, lighttpd and prometheus unless a
# policy-rc.d forbids it (containers usually have one that exits 101, and
# on this machine installing did not start them); stop them in case they
# were started anyway. pgrep/kill by the pid file would do too, but the
# init script knows its pid file.
for svc in apache2 nginx lighttpd prometheus; do
	if [[ -x /etc/init.d/$svc ]] && /etc/init.d/$svc status >/dev/null 2>&1; then
		echo "install.sh: stopping the $svc service started by its package"
		/etc/init.d/$svc stop || true
	fi
done
echo "install.sh: done"
