#!/usr/bin/env bash
# dist/ci.sh tests the release as a user gets it, on a Debian machine where
# it runs as root (systemd installed, not necessarily running): it builds
# the release twice and checks that the builds are identical and that
# SHA256SUMS holds; installs the amd64 .deb with dpkg -i (which removes
# fcgiwrap: Conflicts, Replaces); has systemd-analyze verify the
# installed units; starts the installed runner as cgirun-fcgi.socket and
# .service would, from their settings (the socket passed by
# systemd-socket-activate, the unit's user, group, environment, and
# NoNewPrivileges, CapabilityBoundingSet and UMask), behind a real nginx
# whose server includes Debian's fcgiwrap example
# (/usr/share/doc/fcgiwrap/examples/nginx.conf) as it is, and asks it for a
# script in /usr/lib/cgi-bin; then stops it, removes the package with
# dpkg -r and checks that nothing of it is left. fcgiwrap is installed
# again at the end when it was there at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
started=$SECONDS

fail() {
	echo "dist/ci.sh: $*" >&2
	exit 1
}

# package:command pairs, installed when the command is missing.
missing=()
for w in systemd:systemd-analyze systemd:systemd-socket-activate nginx:nginx util-linux:setpriv curl:curl groff-base:groff; do
	PATH="$PATH:/usr/sbin:/sbin" command -v "${w#*:}" >/dev/null 2>&1 || missing+=("${w%%:*}")
done
if ((${#missing[@]} > 0)); then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
fcgiwrap_example=/usr/share/doc/fcgiwrap/examples/nginx.conf
[[ -f $fcgiwrap_example ]] || fail "$fcgiwrap_example is missing: install fcgiwrap (integration/install.sh does)"
had_fcgiwrap=no
dpkg -s fcgiwrap 2>/dev/null | grep -q '^Status: install ok installed' && had_fcgiwrap=yes

work=$(mktemp -d)
chmod 755 "$work"
runner=
listen=
nginx_pid=
script=/usr/lib/cgi-bin/cgirun-ci-test
app=/usr/local/bin/cgirun-ci-app
cleanup() {
	[[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null || true
	if [[ -n $runner ]]; then
		kill -KILL "$runner" 2>/dev/null || true
		rm -f "$listen"
	fi
	rm -f "$script" "$app"
	if dpkg -s cgirun >/dev/null 2>&1; then dpkg --purge cgirun >/dev/null || true; fi
	if [[ $had_fcgiwrap == yes ]] && ! dpkg -s fcgiwrap 2>/dev/null | grep -q '^Status: install ok installed'; then
		apt-get install -y -qq --no-install-recommends fcgiwrap >/dev/null || echo "dist/ci.sh: could not install fcgiwrap again" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# The release, built twice: byte-identical, and as SHA256SUMS says.
bash dist/reproducible_test.sh "$work/release"
release=$work/release/a
(cd "$release" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not hold"
deb=$(echo "$release"/cgirun_*_amd64.deb)
[[ -f $deb ]] || fail "no amd64 .deb in $release"

# Debian's example, kept before fcgiwrap goes with it.
cp "$fcgiwrap_example" "$work/fcgiwrap-nginx.conf"

dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i $deb failed"; }
if dpkg -s fcgiwrap 2>/dev/null | grep -q '^Status: install ok installed'; then
	fail "fcgiwrap is still installed beside cgirun"
fi
/usr/bin/cgirun version | grep -Eq '^cgirun v[0-9]+\.[0-9]+\.[0-9]+(-[0-9.]+-[0-9a-f]{12})?(\+dirty)? go' ||
	fail "cgirun version = $(/usr/bin/cgirun version): want a module version with the revision"
[[ -L /etc/systemd/system/sockets.target.wants/cgirun-fcgi.socket ]] || fail "dpkg -i did not enable cgirun-fcgi.socket"
groff -man -Tutf8 -ww -z <(zcat /usr/share/man/man1/cgirun.1.gz) || fail "the man page does not format"

# systemd-analyze verify on every unit; a template for an instance whose
# program exists.
units=/lib/systemd/system
cp /usr/bin/cgirun "$app"
mkdir "$work/units"
ln -s "$units/cgirun@.service" "$work/units/cgirun@cgirun-ci-app.service"
ln -s "$units/cgirun@.socket" "$work/units/cgirun@cgirun-ci-app.socket"
systemd-analyze verify "$units/cgirun-fcgi.socket" "$units/cgirun-fcgi.service" \
	"$work/units/cgirun@cgirun-ci-app.service" "$work/units/cgirun@cgirun-ci-app.socket" ||
	fail "systemd-analyze verify refuses the installed units"
systemd-analyze security --offline=true "$units/cgirun-fcgi.service" 2>/dev/null | tail -1

# unit_values FILE SECTION KEY prints the values of KEY in SECTION, one a
# line, as systemd reads them (an empty value empties the list). Quotes,
# escapes, specifiers and variables are refused rather than guessed.
unit_values() {
	awk -v section="[$2]" -v key="$3" '
		/^[ \t]*[#;]/ || /^[ \t]*$/ { next }
		/^\[/ { current = $0; next }
		current == section {
			k = $0; sub(/=.*/, "", k); gsub(/[ \t]/, "", k)
			if (k != key) next
			v = $0; sub(/^[^=]*=[ \t]*/, "", v)
			if (v == "") { n = 0; next }
			if (v ~ /["'\''\\%$]/) { print "unsupported: " v > "/dev/stderr"; exit 1 }
			values[n++] = v
		}
		END { for (i = 0; i < n; i++) print values[i] }' "$1"
}
one_value() {
	local v
	v=$(unit_values "$@")
	[[ -n $v && $v != *$'\n'* ]] || fail "$1: [$2] $3= is not set once"
	echo "$v"
}
service=$units/cgirun-fcgi.service
socket_unit=$units/cgirun-fcgi.socket
listen=$(one_value "$socket_unit" Socket ListenStream)
mode=$(one_value "$socket_unit" Socket SocketMode)
sock_user=$(one_value "$socket_unit" Socket SocketUser)
sock_group=$(one_value "$socket_unit" Socket SocketGroup)
read -r -a exec_start <<<"$(one_value "$service" Service ExecStart)"
user=$(one_value "$service" Service User)
group=$(one_value "$service" Service Group)
umask_value=$(one_value "$service" Service UMask)
[[ $(one_value "$service" Service NoNewPrivileges) == yes ]] || fail "$service: NoNewPrivileges= is not yes"
[[ -z $(unit_values "$service" Service CapabilityBoundingSet) ]] || fail "$service: CapabilityBoundingSet= is not empty"
env_args=()
while read -r line; do
	for kv in $line; do env_args+=(-E "$kv"); done
done < <(unit_values "$service" Service Environment)
while read -r file; do
	file=${file#-}
	if [[ -f $file ]]; then
		while read -r kv; do
			[[ $kv == \#* || -z $kv ]] || env_args+=(-E "$kv")
		done <"$file"
	fi
done < <(unit_values "$service" Service EnvironmentFile)

# A CGI script where Debian's example serves /cgi-bin/: root /usr/lib.
mkdir -p /usr/lib/cgi-bin
cat >"$script" <<'END'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "hello from $(id -un) via $GATEWAY_INTERFACE at $SCRIPT_NAME"
END
chmod 755 "$script"

# The runner as the units start it: systemd-socket-activate binds the
# socket, then runs the program on the first connection with it on fd 3
# (LISTEN_FDS, LISTEN_PID) and only the given environment, as systemd
# does; setpriv becomes the unit's user with no capability and no way to
# gain privileges.
[[ -e $listen ]] && fail "$listen exists before the runner starts: is fcgiwrap or cgirun running?"
(
	umask "$umask_value"
	exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		systemd-socket-activate -l "$listen" "${env_args[@]}" \
		setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- \
		"${exec_start[@]}"
) >"$work/runner.log" 2>&1 &
runner=$!
deadline=$((SECONDS + 20))
until grep -q "^Listening on $listen" "$work/runner.log"; do
	((SECONDS < deadline)) || { cat "$work/runner.log" >&2; fail "systemd-socket-activate did not listen on $listen"; }
	kill -0 "$runner" 2>/dev/null || { cat "$work/runner.log" >&2; fail "systemd-socket-activate exited"; }
	sleep 0.1
done
chown "$sock_user:$sock_group" "$listen"
chmod "$mode" "$listen"

# nginx as Debian configures it (workers as www-data), its server block
# holding Debian's fcgiwrap example as it is.
p=$work/nginx
mkdir -p "$p/logs" "$p/tmp"
cat >"$p/nginx.conf" <<END
user www-data;
worker_processes 1;
pid $p/nginx.pid;
error_log $p/logs/error.log;
events {}
http {
	access_log $p/logs/access.log;
	client_body_temp_path $p/tmp/body;
	proxy_temp_path $p/tmp/proxy;
	fastcgi_temp_path $p/tmp/fastcgi;
	uwsgi_temp_path $p/tmp/uwsgi;
	scgi_temp_path $p/tmp/scgi;
	server {
		listen unix:$p/http.sock;
		include $work/fcgiwrap-nginx.conf;
	}
}
END
nginx -p "$p/" -c "$p/nginx.conf" -e "$p/logs/error.log" -g 'daemon off;' &
nginx_pid=$!
deadline=$((SECONDS + 20))
until [[ -S $p/http.sock ]]; do
	((SECONDS < deadline)) || { cat "$p/logs/error.log" >&2; fail "nginx did not listen"; }
	sleep 0.1
done

answer=$(curl -sS --max-time 20 --unix-socket "$p/http.sock" -w '%{http_code}' http://localhost/cgi-bin/cgirun-ci-test) ||
	{ cat "$work/runner.log" "$p/logs/error.log" >&2; fail "the request failed"; }
want=$'hello from www-data via CGI/1.1 at /cgi-bin/cgirun-ci-test\n200'
if [[ $answer != "$want" ]]; then
	cat "$work/runner.log" "$p/logs/error.log" >&2
	fail "GET /cgi-bin/cgirun-ci-test = $(printf %q "$answer"), want $(printf %q "$want")"
fi
grep -q 'serving FastCGI' "$work/runner.log" || fail "the runner did not log serving FastCGI"
grep -q 'no --root' "$work/runner.log" || fail "the runner did not warn that no --root was given"
ps -o user= -p "$runner" | grep -qx "$user" || fail "the runner does not run as $user"
echo "dist/ci.sh: nginx with Debian's fcgiwrap example got from the installed cgirun: $(head -1 <<<"$answer")"

# Stop as systemd would (KillMode=mixed: SIGTERM to the runner), then
# remove the package.
kill "$nginx_pid"
wait "$nginx_pid" || true
nginx_pid=
kill -TERM "$runner"
deadline=$((SECONDS + 40))
while kill -0 "$runner" 2>/dev/null; do
	((SECONDS < deadline)) || fail "the runner did not stop within 40s of SIGTERM"
	sleep 0.1
done
status=0
wait "$runner" || status=$?
((status == 0)) || { cat "$work/runner.log" >&2; fail "the runner exited with status $status on SIGTERM, want 0"; }
runner=
rm -f "$listen" # systemd's RemoveOnStop=yes
rm -f "$app"
dpkg -r cgirun >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r cgirun failed"; }
[[ ! -e /usr/bin/cgirun ]] || fail "/usr/bin/cgirun is left after dpkg -r"
for f in "$units"/cgirun-fcgi.socket "$units"/cgirun-fcgi.service "$units"/cgirun@.service "$units"/cgirun@.socket /etc/systemd/system/sockets.target.wants/cgirun-fcgi.socket; do
	[[ ! -e $f && ! -L $f ]] || fail "$f is left after dpkg -r"
done
# No process runs the package's binary (deleted or not); other cgirun
# binaries of the machine's tests are none of the package's.
for exe in /proc/[0-9]*/exe; do
	if [[ $(readlink "$exe" 2>/dev/null) == /usr/bin/cgirun* ]]; then
		pid=${exe#/proc/}
		fail "process ${pid%/exe} runs /usr/bin/cgirun after dpkg -r: $(tr '\0' ' ' <"/proc/${pid%/exe}/cmdline")"
	fi
done
dpkg --purge cgirun >/dev/null
echo "dist/ci.sh: passed in $((SECONDS - started))s"
