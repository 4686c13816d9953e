#!/usr/bin/env bash
# run.sh: the load benchmark (issue 6). In one run on this machine it builds
# the hello programs, starts real nginx on 127.0.0.1 with its own temporary
# prefix and every back end on a unix socket (or 127.0.0.1 TCP) in a
# temporary directory, drives nginx with wrk, and prints markdown tables:
#
#   - throughput of GET / ("Hello, World!\n") through nginx: nginx alone,
#     cgirun FastCGI (keepalive, without, over TCP), Go's net/http/fcgi
#     (keepalive, without), proxy_pass to Go's net/http, php-fpm, and a C
#     CGI program through `cgirun fcgi` and fcgiwrap; interleaved passes,
#     median and min-max, the targets' ratios computed within each pass;
#   - the back ends' peak RSS while wrk holds 1000 connections to nginx;
#   - a streamed upload and download (1 GiB by default) through nginx:
#     cgirun, net/http/fcgi, proxy_pass to net/http;
#   - floors: what Go itself costs with none of a gateway's work
#     (integration/bench/fcgifloor: a fixed FastCGI answer with no handler,
#     the same handler as the others called on the connection's goroutine
#     with nothing around it, and a fork+exec runner with no checks),
#     beside cgirun and the others;
#   - CGI cold start with hyperfine: cgi.Serve, cgirun.Run, net/http/cgi, a
#     Go program that only prints once net/http is initialised and one that
#     only prints, each built with plain `go build` and with CGO_ENABLED=0
#     (static: no dynamic loader at start).
#
# Run it from anywhere:  bash integration/bench/run.sh > results.md
# (tables on stdout, progress on stderr). It needs go, nginx, wrk, curl and
# cc; hyperfine, fcgiwrap and php-fpm8.2 are optional (their rows are
# skipped with a message). `sudo bash integration/install.sh` installs most.
#
# Settings (environment):
#   BENCH_PASSES=3           interleaved passes of every throughput scenario
#   BENCH_DURATION=5s        wrk's -d for each scenario in each pass
#   BENCH_THREADS=2          wrk's -t
#   BENCH_CONNS=8            wrk's -c, and -c of the `-c N` runner rows (the runner and
#                            fcgiwrap also run at -c 1 and -c 32, each loaded by as
#                            many wrk connections)
#   BENCH_MEM_CONNS=1000     wrk's -c of the memory scenario
#   BENCH_MEM_DURATION=10s   wrk's -d of the memory scenario
#   BENCH_STREAM_MB=1024     MiB uploaded and downloaded in each round
#   BENCH_STREAM_ROUNDS=3    rounds of uploads and downloads in each pass (its
#                            figure is their median)
#   BENCH_COLD_RUNS=200      hyperfine runs of each program in each pass
#   BENCH_NGINX_WORKERS=2    nginx's worker_processes
#   BENCH_KEEPALIVE=32       nginx's upstream keepalive (idle connections)
#   BENCH_PHP_CHILDREN=4     php-fpm's pm.max_children (pm = static)
#   BENCH_KEEP=1             keep the temporary directory (logs, configs)
#
# Every response is checked: wrk runs a Lua script that counts answers that
# are not "200 Hello, World!\n", and any such answer, non-2xx or socket
# error fails the scenario loudly (its row says FAILED, the exit status is
# 1); a failed figure is never counted. Everything started is stopped on
# exit, Ctrl-C included, by process group (fcgiwrap's preforked children
# outlive their parent otherwise), and the script checks nothing is left.
set -euo pipefail

PASSES=${BENCH_PASSES:-3}
DURATION=${BENCH_DURATION:-5s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-8}
MEM_CONNS=${BENCH_MEM_CONNS:-1000}
MEM_DURATION=${BENCH_MEM_DURATION:-10s}
STREAM_MB=${BENCH_STREAM_MB:-1024}
STREAM_ROUNDS=${BENCH_STREAM_ROUNDS:-3}
COLD_RUNS=${BENCH_COLD_RUNS:-200}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-2}
KEEPALIVE=${BENCH_KEEPALIVE:-32}
PHP_CHILDREN=${BENCH_PHP_CHILDREN:-4}

GREETING='Hello, World!'
STREAM_BYTES=$((STREAM_MB * 1024 * 1024))
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

for n in PASSES CONNS THREADS MEM_CONNS STREAM_MB STREAM_ROUNDS COLD_RUNS NGINX_WORKERS KEEPALIVE PHP_CHILDREN; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$n=${!n}: want a positive whole number"
done

for cmd in go nginx wrk curl cc; do
	command -v "$cmd" >/dev/null || die "$cmd not found; sudo bash integration/install.sh installs the benchmark's tools"
done
have_hyperfine=$(command -v hyperfine || true)
have_fcgiwrap=$(command -v fcgiwrap || true)
have_phpfpm=$(command -v php-fpm8.2 || command -v php-fpm || true)
[[ -n $have_hyperfine ]] || log "hyperfine not found: the cold-start table is skipped"
[[ -n $have_fcgiwrap ]] || log "fcgiwrap not found: its rows are skipped"
[[ -n $have_phpfpm ]] || log "php-fpm (php-fpm8.2) not found: its row is skipped (apt-get install php-fpm)"

# wrk -c1000 through nginx needs about two descriptors per client.
need_fds=$((MEM_CONNS * 3 + 256))
if (($(ulimit -n) < need_fds)); then
	ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
(($(ulimit -n) >= need_fds)) || log "ulimit -n is $(ulimit -n), below the $need_fds that $MEM_CONNS clients need; the memory scenario may fail"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T=$(mktemp -d "${TMPDIR:-/tmp}/cgirun-bench.XXXXXX")
# nginx's workers and php-fpm's children may run as another user.
chmod 755 "$T"
mkdir -p "$T"/{bin,cgi-bin,php,s,logs,wrk,cold,nginx/logs,nginx/tmp}

# ---------------------------------------------------------------------------
# Processes: each is started with setsid, so its pid is its process group,
# and stopping the group stops whatever it forked (fcgiwrap's children,
# nginx's and php-fpm's workers, scripts).

declare -A PIDNAME=()
PIDS=()

# start NAME LOGFILE CMD...: start CMD in its own session, stdin from
# /dev/null; the pid lands in STARTED.
start() {
	local name=$1 logf=$2
	shift 2
	setsid "$@" </dev/null >"$logf" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
	PIDNAME[$STARTED]=$name
}

# groups_alive: the process groups of PIDS that still hold a process.
groups_alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		if pgrep -g "$pid" >/dev/null 2>&1; then
			echo "$pid"
		fi
	done
}

cleanup() {
	local rc=$? pid i left
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 50; i++)); do
		left=$(groups_alive)
		[[ -z $left ]] && break
		sleep 0.1
	done
	for pid in $left; do
		log "${PIDNAME[$pid]} (process group $pid) still running after SIGTERM: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	sleep 0.2
	left=$(groups_alive)
	if [[ -n $left ]]; then
		for pid in $left; do
			log "LEFT RUNNING: ${PIDNAME[$pid]} group $pid: $(pgrep -g "$pid" | tr '\n' ' ')"
		done
		rc=1
	fi
	if [[ ${BENCH_KEEP:-} == 1 ]]; then
		log "kept $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# wait_for_socket PATH|HOST:PORT PID: wait until the socket answers.
wait_for() {
	local where=$1 pid=$2 i
	for ((i = 0; i < 100; i++)); do
		if [[ $where == /* ]]; then
			[[ -S $where ]] && return 0
		elif (echo >"/dev/tcp/${where%:*}/${where##*:}") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "${PIDNAME[$pid]} exited at start; its log:
$(cat "$T/logs/${PIDNAME[$pid]}.log" 2>/dev/null)"
		sleep 0.1
	done
	die "${PIDNAME[$pid]} does not listen on $where after 10 s"
}

# ---------------------------------------------------------------------------
# Build.

log "building in $T/bin"
(cd "$REPO" && go build -o "$T/bin/" ./examples/hello ./cmd/cgirun ./integration/bench/...)
# Each cold-start program is built twice: as `go build` does by default
# (net's cgo resolver: the dynamic loader runs at start) and with
# CGO_ENABLED=0 (static), as "NAME-static".
COLD=(coldserve coldrun coldnethttpcgi coldhttp coldplain)
COLD_ALL=()
mkdir -p "$T/bin/static"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$T/bin/static/" "${COLD[@]/#/./integration/bench/}")
for b in "${COLD[@]}"; do
	mv "$T/bin/static/$b" "$T/bin/$b-static"
	COLD_ALL+=("$b" "$b-static")
done
# The cold-start programs are timed as copies: a file just written by the
# linker starts 5-10% slower than a copy of it (page cache state), and
# more so the larger it is, which would favour the smaller binaries.
for b in "${COLD_ALL[@]}"; do
	cp "$T/bin/$b" "$T/bin/$b.tmp" && mv "$T/bin/$b.tmp" "$T/bin/$b"
done
cc -O2 -o "$T/cgi-bin/hello-c" "$REPO/examples/cgi-bin/hello.c"
printf '<?php echo "Hello, World!\\n";\n' >"$T/php/hello.php"
chmod 755 "$T/cgi-bin" "$T/php" "$T/s"
chmod 644 "$T/php/hello.php"

# ---------------------------------------------------------------------------
# Ports: consecutive free ones from a random base.

used=$(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}' | sort -u)
PORT_BASE=0
for ((try = 0; try < 50; try++)); do
	b=$((20000 + RANDOM % 30000))
	ok=1
	for ((p = b; p < b + 40; p++)); do
		if grep -qx "$p" <<<"$used"; then
			ok=0
			break
		fi
	done
	if ((ok)); then
		PORT_BASE=$b
		break
	fi
done
((PORT_BASE)) || die "no 40 free consecutive ports found"
NEXT_PORT=$PORT_BASE
next_port() {
	PORT=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}

# ---------------------------------------------------------------------------
# Back ends.

S=$T/s
# start_cgirun NAME BINARY ADDR: a cgirun.Run program serving FastCGI.
# start_run NAME BIN ADDR [VARIABLE]: a cgirun.Run program serving on
# ADDR, given in VARIABLE (CGIRUN_FASTCGI by default).
start_run() {
	local name=$1 bin=$2 addr=$3 var=${4:-CGIRUN_FASTCGI}
	start "$name" "$T/logs/$name.log" env "$var=$addr" CGIRUN_SOCKET_MODE=0666 "$T/bin/$bin"
}

log "starting the back ends"
next_port
CG_TCP_PORT=$PORT
start_run cg "hello" "unix:$S/cg.sock"
PID_cg=$STARTED
start_run cgtcp "hello" "tcp:127.0.0.1:$CG_TCP_PORT"
PID_cgtcp=$STARTED
start_run cgscgi "hello" "unix:$S/cgscgi.sock" CGIRUN_SCGI
PID_cgscgi=$STARTED
start_run cguwsgi "hello" "unix:$S/cguwsgi.sock" CGIRUN_UWSGI
PID_cguwsgi=$STARTED
start nf "$T/logs/nf.log" "$T/bin/nethttpfcgi" -listen "unix:$S/nf.sock"
PID_nf=$STARTED
start nh "$T/logs/nh.log" "$T/bin/nethttp" -listen "unix:$S/nh.sock"
PID_nh=$STARTED
# Fresh processes for the memory and streaming scenarios: their peak RSS
# is theirs alone.
start_run cgmem "hello" "unix:$S/cgmem.sock"
PID_cgmem=$STARTED
start nfmem "$T/logs/nfmem.log" "$T/bin/nethttpfcgi" -listen "unix:$S/nfmem.sock"
PID_nfmem=$STARTED
start floormem "$T/logs/floormem.log" "$T/bin/fcgifloor" -listen "unix:$S/floormem.sock"
PID_floormem=$STARTED
start floorhmem "$T/logs/floorhmem.log" "$T/bin/fcgifloor" -mode handler -listen "unix:$S/floorhmem.sock"
PID_floorhmem=$STARTED
start_run cgst "cgirunhello" "unix:$S/cgst.sock"
PID_cgst=$STARTED
start nfst "$T/logs/nfst.log" "$T/bin/nethttpfcgi" -listen "unix:$S/nfst.sock"
PID_nfst=$STARTED
start nhst "$T/logs/nhst.log" "$T/bin/nethttp" -listen "unix:$S/nhst.sock"
PID_nhst=$STARTED
# The floors: a FastCGI answer with no handler, the handler with nothing
# around it, and a runner with no checks (fcgifloor's doc).
start floor "$T/logs/floor.log" "$T/bin/fcgifloor" -listen "unix:$S/floor.sock"
PID_floor=$STARTED
start floorh "$T/logs/floorh.log" "$T/bin/fcgifloor" -mode handler -listen "unix:$S/floorh.sock"
PID_floorh=$STARTED
start floorx "$T/logs/floorx.log" "$T/bin/fcgifloor" -mode exec -listen "unix:$S/floorx.sock"
PID_floorx=$STARTED
start runc "$T/logs/runc.log" "$T/bin/cgirun" fcgi -s "unix:$S/runc.sock" --socket-mode 0666 -c "$CONNS" --root "$T/cgi-bin"
PID_runc=$STARTED
start rundef "$T/logs/rundef.log" "$T/bin/cgirun" fcgi -s "unix:$S/rundef.sock" --socket-mode 0666 --root "$T/cgi-bin"
PID_rundef=$STARTED
# The runner and fcgiwrap at -c 1 and -c 32 too, each loaded by as many
# wrk connections as its -c.
start runc1 "$T/logs/runc1.log" "$T/bin/cgirun" fcgi -s "unix:$S/runc1.sock" --socket-mode 0666 -c 1 --root "$T/cgi-bin"
PID_runc1=$STARTED
start runc32 "$T/logs/runc32.log" "$T/bin/cgirun" fcgi -s "unix:$S/runc32.sock" --socket-mode 0666 -c 32 --root "$T/cgi-bin"
PID_runc32=$STARTED
for n in cg cgscgi cguwsgi nf nh cgmem nfmem floormem floorhmem cgst nfst nhst runc rundef runc1 runc32 floor floorh floorx; do
	wait_for "$S/$n.sock" "$(eval echo "\$PID_$n")"
done
wait_for "127.0.0.1:$CG_TCP_PORT" "$PID_cgtcp"

if [[ -n $have_fcgiwrap ]]; then
	start wrapc "$T/logs/wrapc.log" "$have_fcgiwrap" -c "$CONNS" -s "unix:$S/wrapc.sock"
	PID_wrapc=$STARTED
	# fcgiwrap's default: one process, as Debian's fcgiwrap.service runs it.
	start wrapdef "$T/logs/wrapdef.log" "$have_fcgiwrap" -s "unix:$S/wrapdef.sock"
	PID_wrapdef=$STARTED
	start wrapc1 "$T/logs/wrapc1.log" "$have_fcgiwrap" -c 1 -s "unix:$S/wrapc1.sock"
	PID_wrapc1=$STARTED
	start wrapc32 "$T/logs/wrapc32.log" "$have_fcgiwrap" -c 32 -s "unix:$S/wrapc32.sock"
	PID_wrapc32=$STARTED
	for n in wrapc wrapdef wrapc1 wrapc32; do
		wait_for "$S/$n.sock" "$(eval echo "\$PID_$n")"
	done
	chmod 666 "$S/wrapc.sock" "$S/wrapdef.sock" "$S/wrapc1.sock" "$S/wrapc32.sock"
fi

if [[ -n $have_phpfpm ]]; then
	cat >"$T/php/php-fpm.conf" <<EOF
[global]
pid = $T/php/php-fpm.pid
error_log = $T/logs/php-fpm-error.log
daemonize = no

[bench]
listen = $S/php.sock
listen.mode = 0666
pm = static
pm.max_children = $PHP_CHILDREN
EOF
	phpflags=()
	if ((EUID == 0)); then
		printf 'user = root\ngroup = root\n' >>"$T/php/php-fpm.conf"
		phpflags=(-R)
	fi
	start php "$T/logs/php.log" "$have_phpfpm" -F "${phpflags[@]}" -y "$T/php/php-fpm.conf" -p "$T/php"
	PID_php=$STARTED
	wait_for "$S/php.sock" "$PID_php"
fi

# ---------------------------------------------------------------------------
# nginx: one server on its own port per scenario, so that every back end
# sees the path "/".

NG=$T/nginx
declare -A URL=() LABEL=() WRKC=() # WRKC: wrk's -c of a scenario, when not BENCH_CONNS
SCENARIOS=()
SERVERS=""

# scenario KEY LABEL PATH SERVER-BODY: a throughput scenario on a new port.
scenario() {
	local key=$1 label=$2 path=$3 body=$4
	next_port
	URL[$key]="http://127.0.0.1:$PORT$path"
	LABEL[$key]=$label
	SCENARIOS+=("$key")
	SERVERS+="
    server {
        listen 127.0.0.1:$PORT;
        location / {
$body
        }
    }"
}
# extra KEY PATH SERVER-BODY: a server outside the throughput passes.
extra() {
	local key=$1 path=$2 body=$3
	next_port
	URL[$key]="http://127.0.0.1:$PORT$path"
	SERVERS+="
    server {
        listen 127.0.0.1:$PORT;
        client_max_body_size 0;
        location / {
$body
        }
    }"
}

FCGI='            include /etc/nginx/fastcgi_params;'
KA='            fastcgi_keep_conn on;'
RUNNER="            root $T/cgi-bin;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;"

scenario nginx "nginx \`return 200\` alone" / \
	"            return 200 \"$GREETING\\n\";"
scenario cg_ka "cgirun FastCGI, unix, keepalive" / \
	"$FCGI
            fastcgi_pass cg;
$KA"
scenario cg_noka "cgirun FastCGI, unix, no keepalive" / \
	"$FCGI
            fastcgi_pass unix:$S/cg.sock;"
scenario cg_tcp "cgirun FastCGI, TCP, keepalive" / \
	"$FCGI
            fastcgi_pass cgtcp;
$KA"
# SCGI and uwsgi have no keepalive: nginx opens a connection per request.
scenario cg_scgi "cgirun SCGI, unix" / \
	"            include /etc/nginx/scgi_params;
            scgi_pass unix:$S/cgscgi.sock;"
scenario cg_uwsgi "cgirun uwsgi, unix" / \
	"            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$S/cguwsgi.sock;"
scenario nf_ka "net/http/fcgi, unix, keepalive" / \
	"$FCGI
            fastcgi_pass nf;
$KA"
scenario nf_noka "net/http/fcgi, unix, no keepalive" / \
	"$FCGI
            fastcgi_pass unix:$S/nf.sock;"
scenario proxy "proxy_pass to net/http, unix, keepalive" / \
	"            proxy_pass http://nh;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";"
scenario proxy_noka "proxy_pass to net/http, unix, no keepalive" / \
	"            proxy_pass http://unix:$S/nh.sock:;"
scenario floor_ka "floor: Go FastCGI, no handler (fcgifloor), unix, keepalive" / \
	"$FCGI
            fastcgi_pass floor;
$KA"
scenario floorh_ka "floor: Go FastCGI, the handler alone (fcgifloor -mode handler), unix, keepalive" / \
	"$FCGI
            fastcgi_pass floorh;
$KA"
if [[ -n $have_phpfpm ]]; then
	# Without fastcgi_keep_conn: each php-fpm child serves one connection
	# at a time, so kept connections beyond pm.max_children would stall.
	scenario php "php-fpm (static, $PHP_CHILDREN children), unix, no keepalive" /hello.php \
		"            root $T/php;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_pass unix:$S/php.sock;"
fi
# runner_scenario KEY LABEL SOCKET [CONNS]: hello-c through the FastCGI
# runner on $S/SOCKET.sock, loaded by CONNS wrk connections (BENCH_CONNS
# unless given).
runner_scenario() {
	scenario "$1" "$2" /hello-c "$RUNNER
            fastcgi_pass unix:$S/$3.sock;"
	[[ -z ${4:-} ]] || WRKC[$1]=$4
}
runner_scenario runc "hello-c via \`cgirun fcgi -c $CONNS\`" runc
runner_scenario rundef "hello-c via \`cgirun fcgi\` (default -c: 16 per CPU)" rundef
runner_scenario floorx "floor: hello-c via Go fork+exec, no checks (fcgifloor -mode exec), wrk -c $CONNS" floorx
for c in 1 32; do
	runner_scenario "runc$c" "hello-c via \`cgirun fcgi -c $c\`, wrk -c $c" "runc$c" "$c"
	runner_scenario "floorx$c" "floor: hello-c via Go fork+exec, no checks, wrk -c $c" floorx "$c"
done
if [[ -n $have_fcgiwrap ]]; then
	runner_scenario wrapc "hello-c via \`fcgiwrap -c $CONNS\`" wrapc
	runner_scenario wrapdef "hello-c via \`fcgiwrap\` (default: 1 process)" wrapdef
	for c in 1 32; do
		runner_scenario "wrapc$c" "hello-c via \`fcgiwrap -c $c\`, wrk -c $c" "wrapc$c" "$c"
	done
fi

extra cgmem / "$FCGI
            fastcgi_pass cgmem;
$KA"
extra nfmem / "$FCGI
            fastcgi_pass nfmem;
$KA"
extra floormem / "$FCGI
            fastcgi_pass floormem;
$KA"
extra floorhmem / "$FCGI
            fastcgi_pass floorhmem;
$KA"
STREAM_FCGI="$FCGI
$KA
            fastcgi_request_buffering off;
            fastcgi_max_temp_file_size 0;"
extra cgst "" "$STREAM_FCGI
            fastcgi_pass cgst;"
extra nfst "" "$STREAM_FCGI
            fastcgi_pass nfst;"
extra nhst "" "            proxy_pass http://nhst;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;"

upstreams=""
for u in cg:unix:$S/cg.sock cgtcp:127.0.0.1:$CG_TCP_PORT nf:unix:$S/nf.sock nh:unix:$S/nh.sock floor:unix:$S/floor.sock \
	floorh:unix:$S/floorh.sock cgmem:unix:$S/cgmem.sock nfmem:unix:$S/nfmem.sock floormem:unix:$S/floormem.sock \
	floorhmem:unix:$S/floorhmem.sock \
	cgst:unix:$S/cgst.sock nfst:unix:$S/nfst.sock nhst:unix:$S/nhst.sock; do
	upstreams+="
    upstream ${u%%:*} {
        server ${u#*:};
        keepalive $KEEPALIVE;
    }"
done

user_line=""
((EUID == 0)) && user_line="user root;"
cat >"$NG/nginx.conf" <<EOF
$user_line
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $((MEM_CONNS * 4 + 1024));
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events {
    worker_connections $((MEM_CONNS * 3 + 512));
}
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $NG/tmp/client_body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
$upstreams
$SERVERS
}
EOF
start nginx "$T/logs/nginx.log" nginx -p "$NG/" -c "$NG/nginx.conf" -e "$NG/logs/error.log" -g 'daemon off;'
PID_nginx=$STARTED
u=${URL[nginx]#http://}
wait_for "${u%%/*}" "$PID_nginx"
wait_for "127.0.0.1:$((NEXT_PORT - 1))" "$PID_nginx"

# ---------------------------------------------------------------------------
# Checks and measurements.

cat >"$T/check.lua" <<'EOF'
-- Counts the answers that are not 200 "Hello, World!\n"; done() prints the
-- count (wrk itself counts non-2xx and socket errors).
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
function init(args)
    bad = 0
    sample = ""
end
function response(status, headers, body)
    if status ~= 200 or body ~= "Hello, World!\n" then
        if bad == 0 then
            sample = status .. " " .. string.sub(body or "", 1, 120)
        end
        bad = bad + 1
    end
end
function done(summary, latency, requests)
    local n, s = 0, ""
    for _, t in ipairs(threads) do
        n = n + t:get("bad")
        if s == "" then s = t:get("sample") end
    end
    io.write(string.format("bench-bad-answers: %d %s\n", n, s))
end
EOF

FAILED=()
fail() {
	FAILED+=("$1")
	printf '\nbench: FAILED: %s\n\n' "$1" >&2
}

# check_hello KEY: one request with curl; the body must be the greeting.
check_hello() {
	local key=$1 got
	got=$(curl -sS --max-time 10 -w '|%{http_code}' "${URL[$key]}" 2>&1) || true
	if [[ $got != "$GREETING"$'\n|200' ]]; then
		fail "${LABEL[$key]}: ${URL[$key]} answered $(printf %q "$got"), want 200 $(printf %q "$GREETING"$'\n')"
		return 1
	fi
}

# wrk_run OUT URL CONNS DURATION [TIMEOUT]: run wrk with the check script;
# sets WRK_RPS to its req/s, or returns 1 with the reason in WRK_ERR.
wrk_run() {
	local out=$1 url=$2 conns=$3 dur=$4 timeout=${5:-2s} rps bad
	WRK_ERR="" WRK_RPS=""
	# wrk wants at least one connection per thread.
	if ! wrk -t"$((conns < THREADS ? conns : THREADS))" -c"$conns" -d"$dur" --timeout "$timeout" -s "$T/check.lua" "$url" >"$out" 2>&1; then
		WRK_ERR="wrk failed: $(tail -n 5 "$out")"
		return 1
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	bad=$(awk '/^bench-bad-answers:/ {print $2}' "$out")
	if [[ -z $rps || -z $bad ]]; then
		WRK_ERR="no figures in wrk's output: $(cat "$out")"
		return 1
	fi
	if grep -q 'Non-2xx' "$out" || grep -q 'Socket errors' "$out" || ((bad > 0)); then
		WRK_ERR="$(grep -E 'Non-2xx|Socket errors|bench-bad-answers|requests in' "$out" | tr '\n' ';')"
		return 1
	fi
	WRK_RPS=$rps
}

# stats V...: "median min max" of the values.
stats() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
		m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
		print m, v[1], v[NR] }'
}
fmt0() { printf '%.0f' "$1"; }
fmt2() { printf '%.2f' "$1"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f", a / b }'; }

# group_ticks PGID: the CPU time (clock ticks, user and system) of every
# process in the group, without that of children it waited for: fcgiwrap
# ignores SIGCHLD, so its scripts' time is never counted, and cgirun's
# must not be either.
group_ticks() {
	local p sum=0 t
	for p in $(pgrep -g "$1"); do
		t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# vm KEY PID: VmHWM (or another /proc status line) in kB.
vm() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status"; }

declare -A RPS=() BROKEN=() MED=() CPU=()
declare -A UP=() DOWN=() DOWN_CPU=()
declare -A COLD_MEAN=() COLD_SD=() COLD_MEDIAN=()

log "checking every scenario answers $GREETING"
for key in "${SCENARIOS[@]}"; do
	check_hello "$key" || BROKEN[$key]=1
done

# The process group whose CPU time each scenario costs.
declare -A BACKEND=([cg_ka]=$PID_cg [cg_noka]=$PID_cg [cg_tcp]=$PID_cgtcp [nf_ka]=$PID_nf
	[nf_noka]=$PID_nf [proxy]=$PID_nh [proxy_noka]=$PID_nh [cg_scgi]=$PID_cgscgi [cg_uwsgi]=$PID_cguwsgi [runc]=$PID_runc [rundef]=$PID_rundef
	[runc1]=$PID_runc1 [runc32]=$PID_runc32 [floor_ka]=$PID_floor [floorh_ka]=$PID_floorh [floorx]=$PID_floorx [floorx1]=$PID_floorx [floorx32]=$PID_floorx)
[[ -n $have_phpfpm ]] && BACKEND[php]=$PID_php
if [[ -n $have_fcgiwrap ]]; then
	BACKEND[wrapc]=$PID_wrapc
	BACKEND[wrapc1]=$PID_wrapc1
	BACKEND[wrapc32]=$PID_wrapc32
	BACKEND[wrapdef]=$PID_wrapdef
fi

n=${#SCENARIOS[@]}
for ((pass = 1; pass <= PASSES; pass++)); do
	# Rotate the order, so that no scenario always comes first or last.
	for ((i = 0; i < n; i++)); do
		key=${SCENARIOS[$(((i + pass - 1) % n))]}
		[[ -n ${BROKEN[$key]:-} ]] && continue
		pg=${BACKEND[$key]:-}
		[[ -n $pg ]] && t0=$(group_ticks "$pg")
		if wrk_run "$T/wrk/$key.$pass.txt" "${URL[$key]}" "${WRKC[$key]:-$CONNS}" "$DURATION"; then
			rps=$WRK_RPS
			RPS[$key,$pass]=$rps
			cpu=""
			if [[ -n $pg ]]; then
				t1=$(group_ticks "$pg")
				reqs=$(awk '/requests in/ {print $1}' "$T/wrk/$key.$pass.txt")
				CPU[$key,$pass]=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
				cpu=", back end CPU ${CPU[$key,$pass]} µs/req"
			fi
			log "pass $pass/$PASSES: $(printf '%-60s' "${LABEL[$key]}") $(fmt0 "$rps") req/s$cpu"
		else
			BROKEN[$key]=1
			fail "${LABEL[$key]}, pass $pass: $WRK_ERR"
		fi
		sleep 0.5
	done

	# Streaming, in the same pass: STREAM_ROUNDS rounds, each in an order
	# rotated as the scenarios' are; the pass keeps each back end's median.
	streams=(cgst nfst nhst)
	declare -A sup=() sdown=() scpu=()
	for ((round = 0; round < STREAM_ROUNDS; round++)); do
		for ((i = 0; i < ${#streams[@]}; i++)); do
			key=${streams[(i + pass - 1 + round) % ${#streams[@]}]}
			[[ -n ${BROKEN[$key]:-} ]] && continue
			url=${URL[$key]}
			got=$(head -c "$STREAM_BYTES" /dev/zero |
				curl -sS --max-time 600 -H 'Expect:' -T - -o "$T/up.out" -w '%{http_code} %{speed_upload}' "$url/upload" 2>&1) || true
			read -r code speed _ <<<"$got"
			if [[ $code != 200 || $(cat "$T/up.out" 2>/dev/null) != "received $STREAM_BYTES" ]]; then
				BROKEN[$key]=1
				fail "$key upload, pass $pass: curl said $(printf %q "$got"), answer $(printf %q "$(head -c 200 "$T/up.out" 2>/dev/null)"), want 200 \"received $STREAM_BYTES\""
				continue
			fi
			up=$(awk -v s="$speed" 'BEGIN {print s / 1e6}')
			pg=$(eval echo "\$PID_$key")
			t0=$(group_ticks "$pg")
			got=$(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{speed_download} %{size_download}' "$url/download?bytes=$STREAM_BYTES" 2>&1) || true
			read -r code speed size _ <<<"$got"
			if [[ $code != 200 || $size != "$STREAM_BYTES" ]]; then
				BROKEN[$key]=1
				fail "$key download, pass $pass: curl said $(printf %q "$got"), want 200 and $STREAM_BYTES bytes"
				continue
			fi
			down=$(awk -v s="$speed" 'BEGIN {print s / 1e6}')
			sup[$key]+=" $up"
			sdown[$key]+=" $down"
			# The back end's CPU for the download, in ms per GiB.
			scpu[$key]+=" $(awk -v a="$t0" -v b="$(group_ticks "$pg")" -v hz="$CLK_TCK" -v n="$STREAM_BYTES" \
				'BEGIN {print (b - a) * 1000 / hz / (n / 1073741824)}')"
			log "pass $pass/$PASSES, round $((round + 1))/$STREAM_ROUNDS: stream $key: up $(fmt0 "$up") MB/s, down $(fmt0 "$down") MB/s"
		done
	done
	for key in "${streams[@]}"; do
		[[ -n ${BROKEN[$key]:-} || -z ${sup[$key]:-} ]] && continue
		# The lists are split into stats's arguments.
		read -r "UP[$key,$pass]" _ <<<"$(stats ${sup[$key]})"
		read -r "DOWN[$key,$pass]" _ <<<"$(stats ${sdown[$key]})"
		read -r "DOWN_CPU[$key,$pass]" _ <<<"$(stats ${scpu[$key]})"
	done
	unset sup sdown scpu

	# CGI cold start, in the same pass.
	if [[ -n $have_hyperfine ]]; then
		cold_env=(GATEWAY_INTERFACE=CGI/1.1 SERVER_PROTOCOL=HTTP/1.1 REQUEST_METHOD=GET
			SERVER_SOFTWARE=bench SERVER_NAME=localhost SERVER_PORT=80 HTTP_HOST=localhost
			SCRIPT_NAME=/cgi-bin/hello PATH_INFO=/ REQUEST_URI=/cgi-bin/hello/ QUERY_STRING=
			REMOTE_ADDR=127.0.0.1 REMOTE_PORT=40000)
		if ((pass == 1)); then
			for b in "${COLD_ALL[@]}"; do
				out=$(env "${cold_env[@]}" "$T/bin/$b" </dev/null 2>&1) || true
				if [[ $out != *"$GREETING"* ]]; then
					BROKEN[$b]=1
					fail "cold start: $b printed $(printf %q "$out")"
				fi
			done
		fi
		cmds=()
		for b in "${COLD_ALL[@]}"; do
			[[ -z ${BROKEN[$b]:-} ]] && cmds+=("$T/bin/$b")
		done
		if ((${#cmds[@]})) && env "${cold_env[@]}" hyperfine -N --style none --warmup 20 --runs "$COLD_RUNS" \
			--export-csv "$T/cold/$pass.csv" "${cmds[@]}" </dev/null >"$T/cold/$pass.txt" 2>&1; then
			# command,mean,stddev,median,user,system,min,max; seconds.
			while IFS=, read -r cmd mean sd median _; do
				b=${cmd##*/}
				COLD_MEAN[$b,$pass]=$(awk -v v="$mean" 'BEGIN {print v * 1000}')
				COLD_SD[$b,$pass]=$(awk -v v="$sd" 'BEGIN {print v * 1000}')
				COLD_MEDIAN[$b,$pass]=$(awk -v v="$median" 'BEGIN {print v * 1000}')
			done < <(tail -n +2 "$T/cold/$pass.csv")
			log "pass $pass/$PASSES: cold start $(for b in "${COLD_ALL[@]}"; do printf '%s %.2f ms  ' "$b" "${COLD_MEAN[$b,$pass]:-0}"; done)"
		elif ((${#cmds[@]})); then
			fail "cold start, pass $pass: hyperfine failed: $(tail -n 5 "$T/cold/$pass.txt")"
		fi
	fi
done

# Memory: many clients, upstream keepalive; fresh back ends.
declare -A MEM_RPS=() MEM_FDS=() MEM_HWM=() MEM_FILE=()
for key in cgmem nfmem floormem floorhmem; do
	pid=$(eval echo "\$PID_$key")
	LABEL[$key]=$key
	check_hello "$key" || {
		BROKEN[$key]=1
		continue
	}
	# The most descriptors the back end holds during the run: nginx's
	# connections to it.
	(
		max=0
		while kill -0 "$pid" 2>/dev/null; do
			c=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
			((c > max)) && max=$c && echo "$max" >"$T/$key.fds"
			sleep 0.2
		done
	) &
	sampler=$!
	if wrk_run "$T/wrk/$key.txt" "${URL[$key]}" "$MEM_CONNS" "$MEM_DURATION" 10s; then
		MEM_RPS[$key]=$WRK_RPS
	else
		BROKEN[$key]=1
		fail "memory scenario $key (wrk -c$MEM_CONNS): $WRK_ERR"
	fi
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	MEM_FDS[$key]=$(cat "$T/$key.fds" 2>/dev/null || echo "?")
	MEM_HWM[$key]=$(vm VmHWM "$pid")
	MEM_FILE[$key]=$(vm RssFile "$pid")
	log "memory $key: $(fmt0 "${MEM_RPS[$key]:-0}") req/s at -c$MEM_CONNS, peak RSS ${MEM_HWM[$key]} kB, up to ${MEM_FDS[$key]} fds"
	sleep 1
done
declare -A ST_HWM=()
for key in cgst nfst nhst; do
	ST_HWM[$key]=$(vm VmHWM "$(eval echo "\$PID_$key")")
done

# Every back end must still be running.
for pid in "${PIDS[@]}"; do
	kill -0 "$pid" 2>/dev/null || fail "${PIDNAME[$pid]} (pid $pid) died during the run; its log: $(tail -n 20 "$T/logs/${PIDNAME[$pid]}.log")"
done
if grep -qE '\[(alert|emerg|crit)\]' "$NG/logs/error.log"; then
	log "nginx's error log has alerts:"
	grep -E '\[(alert|emerg|crit)\]' "$NG/logs/error.log" | head -n 20 >&2
fi

# ---------------------------------------------------------------------------
# Report.

kib2mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# perpass A B: the per-pass ratios A/B of RPS, space separated.
perpass() {
	local a=$1 b=$2 p out=()
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${RPS[$a,$p]:-} && -n ${RPS[$b,$p]:-} ]] && out+=("$(div "${RPS[$a,$p]}" "${RPS[$b,$p]}")")
	done
	echo "${out[*]}"
}
# verdict VALUE OP TARGET: met or NOT MET.
verdict() {
	if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == "<" && v < t)) }'; then
		echo "met"
	else
		echo "**NOT MET**"
	fi
}

echo "## Load benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(go version | awk '{print $3}'), $(nginx -v 2>&1 | sed 's/.*version: //'), $(wrk -v 2>&1 | head -n 1 | awk '{print "wrk " $2}');"
echo "Load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the figures noisier)."
echo "$PASSES interleaved passes of \`wrk -t$THREADS -c$CONNS -d$DURATION\` per scenario (order rotated each pass), nginx worker_processes $NGINX_WORKERS, upstream keepalive $KEEPALIVE."
echo
echo "### Throughput: GET through nginx, \"Hello, World!\\n\""
echo
echo "| scenario | req/s median | min–max | per pass | vs nginx alone | back end CPU µs/req, median |"
echo "|---|---:|---:|---|---:|---:|"
for key in "${SCENARIOS[@]}"; do
	vals=()
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${RPS[$key,$p]:-} ]] && vals+=("${RPS[$key,$p]}")
	done
	if [[ -n ${BROKEN[$key]:-} || ${#vals[@]} -eq 0 ]]; then
		echo "| ${LABEL[$key]} | FAILED | | | | |"
		continue
	fi
	cpus=()
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${CPU[$key,$p]:-} ]] && cpus+=("${CPU[$key,$p]}")
	done
	cpu="—"
	((${#cpus[@]})) && cpu=$(stats "${cpus[@]}" | awk '{printf "%.0f", $1}')
	read -r med lo hi <<<"$(stats "${vals[@]}")"
	MED[$key]=$med
	rel=""
	[[ -n ${MED[nginx]:-} ]] && rel="$(div "$med" "${MED[nginx]}")"
	echo "| ${LABEL[$key]} | $(fmt0 "$med") | $(fmt0 "$lo")–$(fmt0 "$hi") | $(for v in "${vals[@]}"; do printf '%s ' "$(fmt0 "$v")"; done)| $rel | $cpu |"
done
[[ -z $have_phpfpm ]] && echo "| php-fpm | skipped: php-fpm8.2 not installed | | | | |"
[[ -z $have_fcgiwrap ]] && echo "| fcgiwrap | skipped: fcgiwrap not installed | | | | |"
echo
echo "Back end CPU: user + system time of the back end's processes (php-fpm's and fcgiwrap's workers included; the CGI scripts' own time is not) during the wrk run, over the requests wrk counted; nginx's and wrk's time is not in it."
echo

echo "### Targets"
echo
echo "Throughput ratios are computed within each pass; the verdict is on their median."
echo
echo "| target | per pass | median | want | verdict |"
echo "|---|---|---:|---:|---|"
# cpu_ratio_row NAME A B WANT: the per-pass ratios of A's back end CPU
# per request to B's, at most WANT.
cpu_ratio_row() {
	local name=$1 a=$2 b=$3 want=$4
	if ! cpu_ratios "$a" "$b"; then
		echo "| $name | no figures | | ≤$want | **NOT MEASURED** |"
		return
	fi
	echo "| $name | $RATIOS | $(fmt2 "$RATIO") | ≤$want | $(verdict "$RATIO" "<=" "$want") |"
}
# cpu_ratios A B: sets RATIOS to the per-pass ratios of A's back end CPU
# per request to B's and RATIO to their median; fails without figures
# (a pass where B's CPU counted no clock tick has none).
cpu_ratios() {
	local a=$1 b=$2 p r rs=()
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${CPU[$a,$p]:-} && -n ${CPU[$b,$p]:-} ]] || continue
		r=$(div "${CPU[$a,$p]}" "${CPU[$b,$p]}")
		[[ $r != nan ]] && rs+=("$r") # no tick counted in a short pass
	done
	((${#rs[@]})) || return 1
	RATIOS=${rs[*]}
	RATIO=$(stats "${rs[@]}" | awk '{print $1}')
}
ratio_row() {
	local name=$1 a=$2 b=$3 want=$4 rs med
	rs=$(perpass "$a" "$b")
	if [[ -z $rs ]]; then
		echo "| $name | no figures | | ≥$want | **NOT MEASURED** |"
		return
	fi
	# shellcheck disable=SC2086
	med=$(stats $rs | awk '{print $1}')
	echo "| $name | $rs | $(fmt2 "$med") | ≥$want | $(verdict "$med" ">=" "$want") |"
}
ratio_row "cgirun keepalive / net/http/fcgi keepalive" cg_ka nf_ka 2.5
ratio_row "cgirun keepalive / proxy_pass to net/http" cg_ka proxy 1.1
if [[ -n $have_phpfpm ]]; then
	ratio_row "cgirun keepalive / php-fpm" cg_ka php 1.5
else
	echo "| cgirun keepalive / php-fpm | php-fpm not installed | | ≥1.5 | skipped |"
fi
cpu_ratio_row "back end CPU per request: cgirun keepalive / proxy_pass keepalive" cg_ka proxy 0.75
cpu_ratio_row "back end CPU per request: cgirun keepalive / net/http/fcgi keepalive" cg_ka nf_ka 0.33
ratio_row "cgirun no keepalive / net/http/fcgi no keepalive" cg_noka nf_noka 1.5
ratio_row "cgirun SCGI / proxy_pass, both no keepalive" cg_scgi proxy_noka 1.0
ratio_row "cgirun uwsgi / proxy_pass, both no keepalive" cg_uwsgi proxy_noka 1.0
cpu_ratio_row "back end CPU per request: cgirun SCGI / cgirun FastCGI no keepalive" cg_scgi cg_noka 1.0
cpu_ratio_row "back end CPU per request: cgirun uwsgi / cgirun FastCGI no keepalive" cg_uwsgi cg_noka 1.0
if [[ -n $have_fcgiwrap ]]; then
	ratio_row "runner / fcgiwrap, both -c $CONNS" runc wrapc 1.5
	ratio_row "runner / fcgiwrap, each its default" rundef wrapdef 1.5
	ratio_row "runner / fcgiwrap, both -c 1" runc1 wrapc1 1.0
	ratio_row "runner / fcgiwrap, both -c 32" runc32 wrapc32 1.0
	cpu_ratio_row "back end CPU per request: runner / fcgiwrap, both -c 1" runc1 wrapc1 1.0
	cpu_ratio_row "back end CPU per request: runner / fcgiwrap, both -c $CONNS" runc wrapc 1.0
	cpu_ratio_row "back end CPU per request: runner / fcgiwrap, both -c 32" runc32 wrapc32 1.0
else
	echo "| runner / fcgiwrap | fcgiwrap not installed | | ≥1.5 | skipped |"
fi
if [[ -n ${MEM_HWM[cgmem]:-} && -z ${BROKEN[cgmem]:-} ]]; then
	echo "| cgirun peak RSS at $MEM_CONNS clients | | $(kib2mib "${MEM_HWM[cgmem]}") MiB | ≤20 MiB | $(verdict "${MEM_HWM[cgmem]}" "<=" 20480) |"
else
	echo "| cgirun peak RSS at $MEM_CONNS clients | | | ≤20 MiB | **NOT MEASURED** |"
fi
up_rs=()
for ((p = 1; p <= PASSES; p++)); do
	[[ -n ${UP[cgst,$p]:-} && -n ${UP[nhst,$p]:-} ]] && up_rs+=("$(div "${UP[cgst,$p]}" "${UP[nhst,$p]}")")
done
if ((${#up_rs[@]})); then
	med=$(stats "${up_rs[@]}" | awk '{print $1}')
	echo "| cgirun upload MB/s / proxy_pass upload MB/s | ${up_rs[*]} | $(fmt2 "$med") | ≥1.0 | $(verdict "$med" ">=" 1.0) |"
	echo "| cgirun streaming back end peak RSS | | $(kib2mib "${ST_HWM[cgst]}") MiB | <64 MiB | $(verdict "${ST_HWM[cgst]}" "<" 65536) |"
else
	echo "| cgirun upload / proxy_pass upload | no figures | | ≥1.0 | **NOT MEASURED** |"
fi
# down_ratio_row NAME B WANT: cgirun's download MB/s over B's within each
# pass, at least WANT.
down_ratio_row() {
	local name=$1 b=$2 want=$3 p rs=() med
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${DOWN[cgst,$p]:-} && -n ${DOWN[$b,$p]:-} ]] && rs+=("$(div "${DOWN[cgst,$p]}" "${DOWN[$b,$p]}")")
	done
	if ((${#rs[@]} == 0)); then
		echo "| $name | no figures | | ≥$want | **NOT MEASURED** |"
		return
	fi
	med=$(stats "${rs[@]}" | awk '{print $1}')
	echo "| $name | ${rs[*]} | $(fmt2 "$med") | ≥$want | $(verdict "$med" ">=" "$want") |"
}
down_ratio_row "cgirun download MB/s / proxy_pass download MB/s" nhst 1.0
down_ratio_row "cgirun download MB/s / net/http/fcgi download MB/s" nfst 1.1
# cold_ratio_row NAME A WANT [B]: A's mean time over B's (default
# net/http/cgi's default build) within each pass, at most WANT.
cold_ratio_row() {
	local name=$1 a=$2 want=$3 b=${4:-coldnethttpcgi} p rs=() med
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${COLD_MEAN[$a,$p]:-} && -n ${COLD_MEAN[$b,$p]:-} ]] &&
			rs+=("$(div "${COLD_MEAN[$a,$p]}" "${COLD_MEAN[$b,$p]}")")
	done
	if ((${#rs[@]} == 0)); then
		echo "| $name | no figures | | ≤$want | **NOT MEASURED** |"
		return
	fi
	med=$(stats "${rs[@]}" | awk '{print $1}')
	echo "| $name | ${rs[*]} | $(fmt2 "$med") | ≤$want | $(verdict "$med" "<=" "$want") |"
}
if [[ -n $have_hyperfine ]]; then
	cold_ratio_row "cold start cgi.Serve / net/http/cgi (mean time)" coldserve 0.85
	cold_ratio_row "cold start cgirun.Run / net/http/cgi (mean time)" coldrun 1.0
	cold_ratio_row "cold start cgi.Serve static / net/http/cgi (mean time)" coldserve-static 0.65
	cold_ratio_row "cold start cgirun.Run static / cgi.Serve static (mean time)" coldrun-static 1.1 coldserve-static
else
	echo "| cold start | hyperfine not installed | | | skipped |"
fi
echo

echo "### Floors: what Go itself costs"
echo
echo "The back end CPU per request of integration/bench/fcgifloor, which does none of a gateway's work (no checks, no limits, no goroutine per request; its doc), against the others in the same pass: with no handler at all (a fixed answer), and with the handler alone (benchapp's, which every Go back end here serves, called on the connection's goroutine with an *http.Request made from the parameters and nothing around it). A ratio to a floor says how far a back end is from the least a Go program pays for the same answer through nginx."
echo
echo "| ratio of back end CPU per request | per pass | median |"
echo "|---|---|---:|"
# floor_row NAME A B: the per-pass ratios of A's back end CPU per
# request to B's, without a target.
floor_row() {
	if cpu_ratios "$2" "$3"; then
		echo "| $1 | $RATIOS | $(fmt2 "$RATIO") |"
	else
		echo "| $1 | no figures | |"
	fi
}
floor_row "floor (no handler) / proxy_pass to net/http, keepalive" floor_ka proxy
floor_row "floor (no handler) / net/http/fcgi, keepalive" floor_ka nf_ka
floor_row "cgirun FastCGI keepalive / floor (no handler)" cg_ka floor_ka
floor_row "floor (the handler alone) / proxy_pass to net/http, keepalive" floorh_ka proxy
floor_row "floor (the handler alone) / net/http/fcgi, keepalive" floorh_ka nf_ka
floor_row "cgirun FastCGI keepalive / floor (the handler alone)" cg_ka floorh_ka
for c in 1 "$CONNS" 32; do
	k=$c # the scenarios at -c BENCH_CONNS have no suffix
	[[ $c == "$CONNS" ]] && k=""
	floor_row "runner -c $c / fork+exec floor, wrk -c $c" "runc$k" "floorx$k"
	[[ -n $have_fcgiwrap ]] && floor_row "fork+exec floor / fcgiwrap -c $c, wrk -c $c" "floorx$k" "wrapc$k"
done
echo

echo "### Memory: wrk -c$MEM_CONNS -d$MEM_DURATION through nginx, upstream keepalive $KEEPALIVE"
echo
echo "The binary's pages (RssFile, read after the run) are part of the peak: a larger binary has more of them resident."
echo
echo "| back end | peak RSS (VmHWM) | of it the binary's pages (RssFile after the run) | most open fds during the run | req/s |"
echo "|---|---:|---:|---:|---:|"
for key in cgmem nfmem floormem floorhmem; do
	name="cgirun (examples/hello)"
	[[ $key == nfmem ]] && name="net/http/fcgi"
	[[ $key == floormem ]] && name="floor: Go FastCGI, no handler (fcgifloor)"
	[[ $key == floorhmem ]] && name="floor: Go FastCGI, the handler alone (fcgifloor -mode handler)"
	if [[ -n ${BROKEN[$key]:-} ]]; then
		echo "| $name | FAILED | | | |"
	else
		echo "| $name | $(kib2mib "${MEM_HWM[$key]}") MiB | $(kib2mib "${MEM_FILE[$key]}") MiB | ${MEM_FDS[$key]} | $(fmt0 "${MEM_RPS[$key]}") |"
	fi
done
echo

echo "### Streaming: $STREAM_MB MiB up (curl -T -, chunked; request buffering off) and down, through nginx; $STREAM_ROUNDS rounds per pass in rotated orders, each pass's median"
echo
echo "| back end | upload MB/s median (min–max) | download MB/s median (min–max) | back end CPU per GiB downloaded, median (ms) | peak RSS over all passes |"
echo "|---|---:|---:|---:|---:|"
for key in cgst nfst nhst; do
	case $key in
	cgst) name="cgirun FastCGI (cgirun.Run)" ;;
	nfst) name="net/http/fcgi" ;;
	nhst) name="proxy_pass to net/http" ;;
	esac
	ups=() downs=() dcpus=()
	for ((p = 1; p <= PASSES; p++)); do
		[[ -n ${UP[$key,$p]:-} ]] && ups+=("${UP[$key,$p]}")
		[[ -n ${DOWN[$key,$p]:-} ]] && downs+=("${DOWN[$key,$p]}")
		[[ -n ${DOWN_CPU[$key,$p]:-} ]] && dcpus+=("${DOWN_CPU[$key,$p]}")
	done
	if [[ -n ${BROKEN[$key]:-} || ${#ups[@]} -eq 0 || ${#downs[@]} -eq 0 ]]; then
		echo "| $name | FAILED | | | $(kib2mib "${ST_HWM[$key]}") MiB |"
		continue
	fi
	read -r um ul uh <<<"$(stats "${ups[@]}")"
	read -r dm dl dh <<<"$(stats "${downs[@]}")"
	read -r cm _ <<<"$(stats "${dcpus[@]}")"
	echo "| $name | $(fmt0 "$um") ($(fmt0 "$ul")–$(fmt0 "$uh")) | $(fmt0 "$dm") ($(fmt0 "$dl")–$(fmt0 "$dh")) | $(fmt0 "$cm") | $(kib2mib "${ST_HWM[$key]}") MiB |"
done
echo

if [[ -n $have_hyperfine ]]; then
	echo "### CGI cold start: hyperfine -N, $COLD_RUNS runs per program per pass"
	echo
	echo "| program | mean ± stddev per pass (ms) | median of means | vs net/http/cgi (default build) | median per pass (ms) | vs net/http/cgi, medians |"
	echo "|---|---|---:|---:|---|---:|"
	declare -A CMED=() CMEDMED=()
	for b in coldnethttpcgi coldserve coldrun coldhttp coldplain coldnethttpcgi-static coldserve-static coldrun-static coldhttp-static coldplain-static; do
		case ${b%-static} in
		coldserve) name="cgi.Serve (cgirun/cgi)" ;;
		coldrun) name="cgirun.Run (CGI mode)" ;;
		coldnethttpcgi) name="net/http/cgi" ;;
		coldhttp) name="Go program that only prints, net/http initialised" ;;
		coldplain) name="Go program that only prints" ;;
		esac
		[[ $b == *-static ]] && name+=", static (CGO_ENABLED=0)"
		ms=() mds=() cells="" mcells=""
		for ((p = 1; p <= PASSES; p++)); do
			[[ -n ${COLD_MEAN[$b,$p]:-} ]] || continue
			ms+=("${COLD_MEAN[$b,$p]}")
			mds+=("${COLD_MEDIAN[$b,$p]}")
			cells+="$(fmt2 "${COLD_MEAN[$b,$p]}") ± $(fmt2 "${COLD_SD[$b,$p]}"); "
			mcells+="$(fmt2 "${COLD_MEDIAN[$b,$p]}") "
		done
		if ((${#ms[@]} == 0)); then
			echo "| $name | FAILED | | | | |"
			continue
		fi
		CMED[$b]=$(stats "${ms[@]}" | awk '{print $1}')
		CMEDMED[$b]=$(stats "${mds[@]}" | awk '{print $1}')
		rel="" relm=""
		[[ -n ${CMED[coldnethttpcgi]:-} ]] && rel=$(fmt2 "$(div "${CMED[$b]}" "${CMED[coldnethttpcgi]}")")
		[[ -n ${CMEDMED[coldnethttpcgi]:-} ]] && relm=$(fmt2 "$(div "${CMEDMED[$b]}" "${CMEDMED[coldnethttpcgi]}")")
		echo "| $name | ${cells%; } | $(fmt2 "${CMED[$b]}") | $rel | ${mcells% } | $relm |"
	done
	echo
fi

if ((${#FAILED[@]})); then
	echo "### Failures"
	echo
	for f in "${FAILED[@]}"; do
		echo "- $f"
	done
	echo
	exit 1
fi
