#!/usr/bin/env bash
# Whole-process benchmark: Rampart against nginx, HAProxy and no proxy at all
# ("direct"), all in front of the same fast upstream, on loopback.
#
#   bash bench/run.sh                       # what `make bench` runs
#   DURATION=3s ROUNDS=1 bash bench/run.sh  # a smoke run
#
# Settings (environment variables, defaults in brackets):
#   DURATION   [10s]   length of one measured run (wrk -d)
#   ROUNDS     [3]     rounds; the tables report the median over rounds
#   CONNS      [50]    wrk connections (wrk -c)
#   THREADS    [1]     wrk threads (wrk -t)
#   WARMUP     [2s]    warm-up run per proxy and scenario, not measured
#   SCENARIOS  [get,post16k,idle,balance,ratelimit,tls,waf,h2,auth,compress,cache,trace]  (balance, ratelimit, tls, waf, h2, auth, compress, cache, trace: see bench/scenario_*.sh)
#   PROXIES    [direct,rampart,rampart-metrics,nginx,haproxy]  (rampart-metrics: with the admin listener, so metrics are recorded;
#              fasthttp, not in the default: bench/bareproxy, a bare fasthttp proxy, the floor of Go and fasthttp;
#              evloop, not in the default: bench/evloop, an epoll loop on fasthttp's parsers, the floor of Go without goroutines)
#   RAMPART_BASE []    a Rampart binary to compare with (say, built from an older commit): proxy rampart-base,
#              not in the default, runs it with the same config as rampart
#   IDLE_CONNS [5000]  connections held open by the idle scenario
#   IDLE_PROXIES [rampart,nginx,haproxy]  proxies measured by the idle scenario
#   BASE_PORT  [18080] upstream port; the proxies listen on the next three
#   LOAD_CPU   [0]     CPU of wrk and the upstream
#   PROXY_CPU  [1]     CPU of the proxy
#   CORAZA     [patched] patched: Rampart built as make builds it, with the patched Coraza (waf/corazapatch);
#              stock: with Coraza as go.mod names it, as `go install` builds it
#
# Everything generated goes to bench/.out/; the tables are printed and written
# to bench/.out/results.md, every single run to bench/.out/raw.tsv.
set -Eeuo pipefail

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
SCENARIOS=${SCENARIOS:-get,post16k,idle,balance,ratelimit,tls,waf,h2,auth,compress,cache,trace}
# run.sh's own load loop measures get and post16k; every other scenario
# measures and reports itself (idle here, the rest in bench/scenario_*.sh).
OWN_SCENARIOS="idle balance ratelimit tls waf h2 auth compress cache trace"
is_own() { [[ " $OWN_SCENARIOS " == *" $1 "* ]]; }
PROXIES=${PROXIES:-direct,rampart,rampart-metrics,nginx,haproxy}
IDLE_CONNS=${IDLE_CONNS:-5000}
IDLE_PROXIES=${IDLE_PROXIES:-rampart,nginx,haproxy}
BASE_PORT=${BASE_PORT:-18080}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
CORAZA=${CORAZA:-patched}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/scenario_balance.sh
source "$BENCH/scenario_balance.sh"
# shellcheck source=bench/scenario_ratelimit.sh
source "$BENCH/scenario_ratelimit.sh"
# shellcheck source=bench/scenario_tls.sh
source "$BENCH/scenario_tls.sh"
# shellcheck source=bench/scenario_waf.sh
source "$BENCH/scenario_waf.sh"
# shellcheck source=bench/scenario_h2.sh
source "$BENCH/scenario_h2.sh"
# shellcheck source=bench/scenario_auth.sh
source "$BENCH/scenario_auth.sh"
# shellcheck source=bench/scenario_compress.sh
source "$BENCH/scenario_compress.sh"
# shellcheck source=bench/scenario_cache.sh
source "$BENCH/scenario_cache.sh"
# shellcheck source=bench/scenario_trace.sh
source "$BENCH/scenario_trace.sh"
OUT=$BENCH/.out
LOGS=$OUT/logs
RAW=$OUT/raw.tsv
RESULTS=$OUT/results.md

UPSTREAM_PORT=$BASE_PORT
declare -A PORT=(
	[direct]=$BASE_PORT
	[rampart]=$((BASE_PORT + 1))
	[nginx]=$((BASE_PORT + 2))
	[haproxy]=$((BASE_PORT + 3))
	[rampart-metrics]=$((BASE_PORT + 4))
	[fasthttp]=$((BASE_PORT + 6))
	[evloop]=$((BASE_PORT + 7))
	[rampart-base]=$((BASE_PORT + 8))
)
ADMIN_PORT=$((BASE_PORT + 5)) # rampart-metrics' admin listener
declare -A PID=()    # proxy name -> PID of the process we started
STARTED=()           # every PID started, for cleanup
LOAD_PID=""          # the wrk or idleconns run in progress
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- cleanup: stop everything we started, on any exit --------------------------

cleanup() {
	local rc=$? pid i alive all
	trap - EXIT INT TERM ERR
	# Our processes and their children (nginx workers, wrk under timeout).
	all=("${STARTED[@]}")
	[[ -n $LOAD_PID ]] && all+=("$LOAD_PID")
	for pid in "${all[@]}"; do
		for i in $(pgrep -P "$pid" 2>/dev/null || true); do all+=("$i"); done
	done
	for pid in "${STARTED[@]}" $LOAD_PID; do kill -TERM "$pid" 2>/dev/null || true; done
	for i in $(seq 1 30); do
		alive=0
		for pid in "${all[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then alive=1; fi
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'log "error: line $LINENO: $BASH_COMMAND failed"' ERR
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# --- helpers ---------------------------------------------------------------------

# dur_secs 10s -> 10 (accepts Ns, Nm, Nh, N); at least 1.
dur_secs() {
	local d=$1 n
	case $d in
	*ms) n=1 ;;
	*s) n=${d%s} ;;
	*m) n=$((${d%m} * 60)) ;;
	*h) n=$((${d%h} * 3600)) ;;
	*) n=$d ;;
	esac
	[[ $n =~ ^[0-9]+$ ]] || die "bad duration $d"
	((n > 0)) || n=1
	echo "$n"
}

has() { [[ ",$1," == *",$2,"* ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: wait until PORT accepts, failing early if PID dies.
wait_port() {
	local port=$1 pid=$2 i
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		port_open "$port" && return 0
		sleep 0.1
	done
	return 1
}

# start_bg LOGFILE CMD...: start CMD in the background, remember its PID in BG_PID.
start_bg() {
	local logfile=$1
	shift
	"$@" >"$logfile" 2>&1 &
	BG_PID=$!
	STARTED+=("$BG_PID")
}

# stop_pid PID: TERM, then KILL after 3 s (its children too: nginx workers).
stop_pid() {
	local pid=$1 i kids p
	kids=$(pgrep -P "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	# Forget it, so that cleanup never signals a later process given the same PID.
	local keep=()
	for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	STARTED=("${keep[@]}")
}

# cpu_ticks PID...: utime+stime (fields 14 and 15 of /proc/PID/stat) summed.
cpu_ticks() {
	local total=0 pid v
	for pid in "$@"; do
		# The command name (field 2) may hold spaces: cut up to its ")".
		v=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# status_kib PID FIELD: a "FIELD: N kB" line of /proc/PID/status.
status_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# children PID: the PIDs of PID's children.
children() { pgrep -P "$1" 2>/dev/null | tr '\n' ' ' || true; }

# cpu_pids NAME [PID]: the processes whose CPU time is the proxy's (PID
# default ${PID[NAME]}; an nginx counts its workers too).
cpu_pids() {
	local p=${2:-${PID[$1]}}
	case $1 in
	nginx | nginx-*) echo "$p $(children "$p")" ;;
	*) echo "$p" ;;
	esac
}

# mem_pid NAME: the process whose memory is reported (nginx: the worker).
mem_pid() {
	local p=${PID[$1]} w
	case $1 in
	nginx)
		w=$(children "$p")
		echo "${w%% *}"
		;;
	*) echo "$p" ;;
	esac
}

# median: the median of the numbers on stdin, "-" when there are none.
median() {
	grep -E '^-?[0-9.]+(e[-+]?[0-9]+)?$' | sort -g | awk '
		{ a[NR] = $1 }
		END {
			if (NR == 0) print "-"
			else if (NR % 2) print a[(NR + 1) / 2]
			else print (a[NR / 2] + a[NR / 2 + 1]) / 2
		}' || true
}

# --- tools -----------------------------------------------------------------------

install_tools() {
	local pkgs=() created_policy=0
	command -v wrk >/dev/null || pkgs+=(wrk)
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx)
	command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || pkgs+=(haproxy)
	command -v taskset >/dev/null || pkgs+=(util-linux)
	command -v pgrep >/dev/null || pkgs+=(procps)
	command -v curl >/dev/null || pkgs+=(curl)
	if has "$SCENARIOS" h2; then
		command -v h2load >/dev/null || pkgs+=(nghttp2-client)
		command -v caddy >/dev/null || ! has "$H2_PROXIES" caddy || pkgs+=(caddy)
	fi
	((${#pkgs[@]})) || return 0

	local sudo=""
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "missing ${pkgs[*]} and not root: install them"
		sudo=sudo
	fi
	log "installing ${pkgs[*]} with apt-get"
	# Keep the packages' init scripts from starting a system nginx or haproxy.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		created_policy=1
	fi
	local apt=(${sudo:+"$sudo"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}")
	if ! "${apt[@]}" >"$LOGS/apt.log" 2>&1; then
		$sudo apt-get update >>"$LOGS/apt.log" 2>&1 || true
		"${apt[@]}" >>"$LOGS/apt.log" 2>&1 || {
			((created_policy)) && $sudo rm -f /usr/sbin/policy-rc.d
			die "apt-get install ${pkgs[*]} failed; see $LOGS/apt.log"
		}
	fi
	((created_policy)) && $sudo rm -f /usr/sbin/policy-rc.d
	return 0
}

# go_build OUTPUT PACKAGE: build with the module's go.mod; if the module's
# go.mod needs tidying (a fresh dependency), build with a private copy of it so
# that the working tree is never modified.
go_build() {
	local out=$1 pkg=$2 name
	name=$(basename "$out")
	(cd "$ROOT" && "$GO" build -o "$out" "$pkg") >"$LOGS/build-$name.log" 2>&1 && return 0
	if grep -q 'go mod tidy\|missing go.sum entry\|no required module' "$LOGS/build-$name.log"; then
		cp "$ROOT/go.mod" "$OUT/go.mod"
		cp "$ROOT/go.sum" "$OUT/go.sum"
		if (cd "$ROOT" && "$GO" build -modfile="$OUT/go.mod" -mod=mod -o "$out" "$pkg") >>"$LOGS/build-$name.log" 2>&1; then
			log "note: go.mod needs 'go mod tidy'; built $name with a private copy of it"
			return 0
		fi
	fi
	return 1
}

# --- configurations ----------------------------------------------------------------

write_configs() {
	mkdir -p "$OUT/nginx" "$OUT/haproxy"

	cat >"$OUT/rampart.yaml" <<EOF
# Generated by bench/run.sh.
listeners:
  bench:
    address: "127.0.0.1:${PORT[rampart]}"
upstreams:
  bench:
    targets:
      - url: http://127.0.0.1:$UPSTREAM_PORT
routes:
  - name: bench
    upstream: bench
access_log: {path: off}
EOF
	# The same with an admin listener: Rampart records its metrics only when
	# something can read them.
	sed "s/127.0.0.1:${PORT[rampart]}/127.0.0.1:${PORT[rampart-metrics]}/" "$OUT/rampart.yaml" >"$OUT/rampart-metrics.yaml"
	printf 'admin:\n  address: "127.0.0.1:%s"\n' "$ADMIN_PORT" >>"$OUT/rampart-metrics.yaml"
	sed "s/127.0.0.1:${PORT[rampart]}/127.0.0.1:${PORT[rampart-base]}/" "$OUT/rampart.yaml" >"$OUT/rampart-base.yaml"

	local user_line=""
	((EUID == 0)) && user_line="user root;"
	cat >"$OUT/nginx/nginx.conf" <<EOF
# Generated by bench/run.sh.
$user_line
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
master_process on;
pid $OUT/nginx/nginx.pid;
error_log $LOGS/nginx-error.log warn;

events {
    worker_connections $NGINX_CONNS;
}

http {
    access_log off;
    client_body_temp_path $OUT/nginx/client_body;
    proxy_temp_path $OUT/nginx/proxy;
    fastcgi_temp_path $OUT/nginx/fastcgi;
    uwsgi_temp_path $OUT/nginx/uwsgi;
    scgi_temp_path $OUT/nginx/scgi;

    keepalive_timeout 75s;
    # The default (1000) would close every benchmark connection many times a second.
    keepalive_requests 1000000;
    # Keep the 16 KiB POST body in memory rather than in a temporary file.
    client_body_buffer_size 64k;

    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

	cat >"$OUT/haproxy/haproxy.cfg" <<EOF
# Generated by bench/run.sh. No "log" line: no logging.
global
    nbthread 1
    maxconn $HAPROXY_CONNS
    pidfile $OUT/haproxy/haproxy.pid

defaults
    mode http
    maxconn $HAPROXY_CONNS
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always

frontend bench
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend bench

backend bench
    server upstream 127.0.0.1:$UPSTREAM_PORT
EOF

	cat >"$OUT/common.lua" <<'EOF'
-- Generated by bench/run.sh: prints one parseable line at the end of a run.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d socket_errors=%d non2xx3xx=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
	{
		echo "-- Generated by bench/run.sh: GET of the small body."
		echo "wrk.method = \"GET\""
		cat "$OUT/common.lua"
	} >"$OUT/get.lua"
	{
		cat <<'EOF'
-- Generated by bench/run.sh: POST of a 16 KiB JSON body.
local target = 16384
local head = '{"items":['
local items, size, n = {}, #head, 0
while true do
  local item = string.format(
    '{"id":%d,"name":"item-%05d","price":%d.%02d,"tags":["bench","rampart"]},',
    n, n, (n * 7) % 1000, n % 100)
  if size + #item + 32 > target then break end
  items[#items + 1] = item
  size = size + #item
  n = n + 1
end
local body = head .. table.concat(items) .. '{"id":-1}],"pad":"'
body = body .. string.rep("x", target - #body - 2) .. '"}'
assert(#body == target)
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
EOF
		cat "$OUT/common.lua"
	} >"$OUT/post16k.lua"
}

# --- processes ---------------------------------------------------------------------

start_upstream() {
	start_bg "$LOGS/upstream.log" taskset -c "$LOAD_CPU" env GOMAXPROCS=1 \
		"$OUT/upstream" -addr "127.0.0.1:$UPSTREAM_PORT"
	UPSTREAM_PID=$BG_PID
	wait_port "$UPSTREAM_PORT" "$UPSTREAM_PID" || die "the upstream did not start; see $LOGS/upstream.log"
}

# start_proxy NAME: start it, wait for its port, check one GET; 1 on failure.
start_proxy() {
	local name=$1 port=${PORT[$1]}
	case $name in
	direct)
		PID[direct]=$UPSTREAM_PID
		return 0
		;;
	rampart)
		start_bg "$LOGS/rampart.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/rampart" run --config "$OUT/rampart.yaml"
		;;
	rampart-metrics)
		start_bg "$LOGS/rampart-metrics.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/rampart" run --config "$OUT/rampart-metrics.yaml"
		;;
	rampart-base)
		start_bg "$LOGS/rampart-base.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$RAMPART_BASE" run --config "$OUT/rampart-base.yaml"
		;;
	fasthttp)
		start_bg "$LOGS/fasthttp.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/bareproxy" -addr "127.0.0.1:$port" -upstream "127.0.0.1:$UPSTREAM_PORT"
		;;
	evloop)
		start_bg "$LOGS/evloop.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/evloop" -addr "127.0.0.1:$port" -upstream "127.0.0.1:$UPSTREAM_PORT"
		;;
	nginx)
		rm -f "$OUT/nginx/nginx.pid"
		start_bg "$LOGS/nginx.log" taskset -c "$PROXY_CPU" \
			"$NGINX" -p "$OUT/nginx" -e "$LOGS/nginx-error.log" -c "$OUT/nginx/nginx.conf"
		;;
	haproxy)
		start_bg "$LOGS/haproxy.log" taskset -c "$PROXY_CPU" \
			"$HAPROXY" -db -f "$OUT/haproxy/haproxy.cfg"
		;;
	esac
	PID[$name]=$BG_PID
	if ! wait_port "$port" "$BG_PID"; then
		log "$name did not start; see $LOGS/$name.log"
		return 1
	fi
	if [[ $name == nginx ]]; then
		for _ in $(seq 1 50); do
			[[ -n $(children "$BG_PID") ]] && break
			sleep 0.1
		done
		[[ -n $(children "$BG_PID") ]] || {
			log "nginx has no worker process"
			return 1
		}
	fi
	return 0
}

stop_proxy() {
	local name=$1
	[[ $name == direct ]] && return 0
	stop_pid "${PID[$name]}"
}

# check_proxy NAME: one GET and one 16 KiB POST answered as the upstream would.
check_proxy() {
	local name=$1 url="http://127.0.0.1:${PORT[$1]}/" got
	got=$(curl -sS --max-time 5 "$url" 2>&1) || true
	if [[ $got != "Hello, World!" ]]; then
		log "$name: GET / returned '${got:0:200}', want 'Hello, World!'"
		return 1
	fi
	got=$(head -c 16384 /dev/zero | tr '\0' 'a' | curl -sS --max-time 5 -H 'Content-Type: application/json' \
		--data-binary @- "$url" 2>&1) || true
	if [[ $got != "received 16384" ]]; then
		log "$name: POST of 16 KiB returned '${got:0:200}', want 'received 16384'"
		return 1
	fi
}

# --- measurements ------------------------------------------------------------------

# run_wrk SCENARIO NAME DURATION OUTFILE: one wrk run, pinned, bounded in time.
run_wrk() {
	wrk_run "http://127.0.0.1:${PORT[$2]}/" "$OUT/$1.lua" "$3" "$4"
}

# run_load DURATION OUTFILE COMMAND...: one run of a load generator, pinned
# to LOAD_CPU and bounded in time; its output goes to OUTFILE.
run_load() {
	local dur=$1 outfile=$2 secs rc=0
	shift 2
	secs=$(dur_secs "$dur")
	taskset -c "$LOAD_CPU" timeout -k 5 $((secs + 30)) "$@" >"$outfile" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=""
	return "$rc"
}

# wrk_run URL SCRIPT DURATION OUTFILE [CONNS]: one wrk run (CONNS default
# $CONNS), as every scenario drives it.
wrk_run() {
	run_load "$3" "$4" wrk -t"$THREADS" -c"${5:-$CONNS}" -d"$3" --timeout 5s --latency -s "$2" "$1"
}

# cpu_busy CPU...: "busy total" jiffies of each CPU, in order, on one line,
# from one read of /proc/stat (busy: everything but idle and iowait).
cpu_busy() {
	awk -v cpus="$*" 'BEGIN { n = split(cpus, want, " ") }
		{ t = 0; for (i = 2; i <= NF; i++) t += $i; v[$1] = (t - $5 - $6) " " t }
		END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), v["cpu" want[i]]; print "" }' /proc/stat
}

# measure SCENARIO NAME ROUND: one measured run; appends a line to raw.tsv.
measure() {
	local scenario=$1 name=$2 round=$3 out pids mpid t0 t1 hwm="" line
	out="$LOGS/wrk-$scenario-$name-r$round.txt"
	if ! kill -0 "${PID[$name]}" 2>/dev/null; then
		log "$name is not running; skipped"
		return 0
	fi
	pids=$(cpu_pids "$name")
	mpid=$(mem_pid "$name")
	# Reset the peak RSS so that VmHWM is this run's peak (Linux >= 4.0).
	if [[ $name != direct ]]; then echo 5 >"/proc/$mpid/clear_refs" 2>/dev/null || HWM_LIFETIME=1; fi
	# shellcheck disable=SC2086
	t0=$(cpu_ticks $pids)
	run_wrk "$scenario" "$name" "$DURATION" "$out" || log "wrk failed for $scenario/$name; see $out"
	# shellcheck disable=SC2086
	t1=$(cpu_ticks $pids)
	[[ $name != direct ]] && hwm=$(status_kib "$mpid" VmHWM)
	line=$(grep '^RESULT ' "$out" || true)
	if [[ -z $line ]]; then
		log "no result for $scenario/$name round $round; see $out"
		return 0
	fi
	# RESULT requests=N duration_us=N p50_us=N p99_us=N socket_errors=N non2xx3xx=N
	local requests duration p50 p99 serr non2xx
	read -r requests duration p50 p99 serr non2xx < <(echo "$line" | sed 's/[a-z0-9_]*=//g; s/^RESULT //')
	local rps cpu_us="-" rss="-"
	rps=$(awk -v r="$requests" -v d="$duration" 'BEGIN { printf "%.1f", (d > 0 ? r / (d / 1e6) : 0) }')
	if [[ $name != direct ]] && ((requests > 0)); then
		cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.3f", t / hz * 1e6 / r }')
		[[ -n $hwm ]] && rss=$hwm
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$name" "$round" "$rps" "$p50" "$p99" \
		"$cpu_us" "$rss" "$requests" "$serr" "$non2xx" >>"$RAW"
	local note=""
	((serr + non2xx > 0)) && note=" ERRORS: socket=$serr status=$non2xx"
	log "$(printf '%-8s %-8s round %s: %10s req/s  p50 %6s us  p99 %6s us  cpu %7s us/req  hwm %6s KiB%s' \
		"$scenario" "$name" "$round" "$rps" "$p50" "$p99" "$cpu_us" "$rss" "$note")"
}

# idle NAME: restart NAME fresh, hold IDLE_CONNS idle connections, record KiB each.
idle() {
	local name=$1 out mpid line
	out="$LOGS/idle-$name.txt"
	log "idle: restarting $name for a fresh baseline"
	stop_proxy "$name"
	if ! start_proxy "$name"; then
		log "idle: $name did not restart"
		return 0
	fi
	sleep 1
	mpid=$(mem_pid "$name")
	timeout -k 5 120 "$OUT/idleconns" -addr "127.0.0.1:${PORT[$name]}" -n "$IDLE_CONNS" -pid "$mpid" \
		-settle 2s >"$out" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || log "idleconns failed for $name; see $out"
	LOAD_PID=""
	line=$(grep '^idle ' "$out" || true)
	if [[ -z $line ]]; then
		log "idle: no result for $name; see $out"
		return 0
	fi
	log "idle $name: $line"
	printf 'idle\t%s\t%s\n' "$name" "$line" >>"$OUT/idle.tsv"
}

# --- report ------------------------------------------------------------------------

# med SCENARIO NAME COLUMN: the median of one raw.tsv column.
med() { awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' "$RAW" | median; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }

fmt() { awk -v v="$1" -v f="$2" -v d="$3" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f, v / d }'; }

report() {
	local scenario name
	{
		echo "# Rampart benchmark"
		echo
		echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
		echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
		echo "- settings: DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS THREADS=$THREADS WARMUP=$WARMUP; wrk and upstream on CPU $LOAD_CPU, proxy on CPU $PROXY_CPU; medians over rounds"
		echo "- versions: $VERSIONS"
		((HWM_LIFETIME)) && echo "- note: could not reset VmHWM; peak RSS is the process lifetime peak"
		for scenario in ${SCENARIOS//,/ }; do
			is_own "$scenario" && continue
			echo
			case $scenario in
			get) echo "## get: GET of a 13-byte body, keep-alive, wrk -t$THREADS -c$CONNS" ;;
			post16k) echo "## post16k: POST of a 16 KiB JSON body, keep-alive, wrk -t$THREADS -c$CONNS" ;;
			esac
			echo
			echo "| proxy | req/s | p50 | p99 | CPU us/req | peak RSS MiB | req/s vs direct | req/s vs nginx | CPU/req vs nginx |"
			echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
			local d_rps n_rps n_cpu
			d_rps=$(med "$scenario" direct 4)
			n_rps=$(med "$scenario" nginx 4)
			n_cpu=$(med "$scenario" nginx 7)
			for name in ${PROXIES//,/ }; do
				local rps p50 p99 cpu rss errs
				rps=$(med "$scenario" "$name" 4)
				[[ $rps == - ]] && continue
				p50=$(med "$scenario" "$name" 5)
				p99=$(med "$scenario" "$name" 6)
				cpu=$(med "$scenario" "$name" 7)
				rss=$(med "$scenario" "$name" 8)
				printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
					"$(fmt "$rps" '%.0f' 1)" "$(fmt "$p50" '%.3f ms' 1000)" "$(fmt "$p99" '%.3f ms' 1000)" \
					"$(fmt "$cpu" '%.1f' 1)" "$(fmt "$rss" '%.1f' 1024)" \
					"$(ratio "$rps" "$d_rps")" "$(ratio "$rps" "$n_rps")" "$(ratio "$cpu" "$n_cpu")"
			done
			if has "$PROXIES" rampart && has "$PROXIES" rampart-metrics; then
				echo
				echo "Metrics on (rampart-metrics) vs off (rampart): req/s $(ratio "$(med "$scenario" rampart-metrics 4)" "$(med "$scenario" rampart 4)"), CPU/req $(ratio "$(med "$scenario" rampart-metrics 7)" "$(med "$scenario" rampart 7)") (target: req/s at least 0.95x)."
			fi
			errs=$(awk -F'\t' -v s="$scenario" '$1 == s && $10 + $11 > 0 { printf "%s round %s: %s socket errors, %s non-2xx/3xx; ", $2, $3, $10, $11 }' "$RAW")
			[[ -n $errs ]] && {
				echo
				echo "**Errors:** $errs"
			}
		done
		if has "$SCENARIOS" idle && [[ -s $OUT/idle.tsv ]]; then
			echo
			echo "## idle: memory per idle keep-alive connection ($IDLE_CONNS connections, each served one GET)"
			echo
			echo "| proxy | idle conns | KiB per idle conn | RSS before MiB | RSS after MiB |"
			echo "|---|---:|---:|---:|---:|"
			awk -F'\t' '{
				split($3, kv, " "); delete m
				for (i in kv) { split(kv[i], p, "="); m[p[1]] = p[2] }
				printf "| %s | %s | %.1f | %.1f | %.1f |\n", $2, m["conns"], m["kib_per_conn"],
					m["rss_before_kib"] / 1024, m["rss_after_kib"] / 1024
				if (m["failed"] + m["closed"] > 0) bad = bad sprintf("%s: %s failed, %s closed by the proxy; ", $2, m["failed"], m["closed"])
			} END { if (bad != "") printf "\n**Errors:** %s\n", bad }' "$OUT/idle.tsv"
		fi
		if has "$SCENARIOS" balance; then balance_report; fi
		if has "$SCENARIOS" ratelimit; then ratelimit_report; fi
		if has "$SCENARIOS" tls; then tls_report; fi
		if has "$SCENARIOS" waf; then waf_report; fi
		if has "$SCENARIOS" h2; then h2_report; fi
		if has "$SCENARIOS" auth; then auth_report; fi
		if has "$SCENARIOS" compress; then compress_report; fi
		if has "$SCENARIOS" cache; then cache_report; fi
		if has "$SCENARIOS" trace; then trace_report; fi
	} >"$RESULTS"
	echo
	cat "$RESULTS"
	echo
	log "results written to $RESULTS (every run: $RAW)"
}

# --- main --------------------------------------------------------------------------

main() {
	mkdir -p "$OUT" "$LOGS"
	cd "$OUT" # whatever a tool writes to its working directory lands here
	: >"$RAW"
	: >"$OUT/idle.tsv"
	HWM_LIFETIME=0

	local s
	for s in ${SCENARIOS//,/ }; do
		[[ $s == get || $s == post16k ]] || is_own "$s" || die "unknown scenario $s (known: get post16k $OWN_SCENARIOS)"
	done
	for s in ${PROXIES//,/ }; do
		[[ -n ${PORT[$s]+x} ]] || die "unknown proxy $s (known: direct, rampart, rampart-metrics, rampart-base, nginx, haproxy, fasthttp, evloop)"
	done
	if has "$PROXIES" rampart-base && [[ ! -x ${RAMPART_BASE:-} ]]; then
		die "proxy rampart-base needs RAMPART_BASE=/path/to/a/rampart/binary"
	fi
	if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS == 0)); then die "ROUNDS must be a positive number"; fi
	dur_secs "$DURATION" >/dev/null

	if (($(nproc) < 2)); then
		log "warning: fewer than 2 CPUs; the proxy shares CPU $LOAD_CPU with wrk and the upstream"
		PROXY_CPU=$LOAD_CPU
	fi

	install_tools
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
	GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
	[[ -x $GO ]] || die "no Go toolchain (set GO=/path/to/go)"

	# File descriptors: 5000 idle connections plus the proxies' upstream side.
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	NOFILE=$(ulimit -n)
	((NOFILE >= IDLE_CONNS + 500)) || log "warning: open file limit $NOFILE is low for $IDLE_CONNS idle connections"
	NGINX_CONNS=$(((NOFILE - 100) < 20000 ? NOFILE - 100 : 20000))
	HAPROXY_CONNS=$(((NOFILE - 200) / 2 < 20000 ? (NOFILE - 200) / 2 : 20000))

	local port
	for s in ${PROXIES//,/ } direct; do
		port=${PORT[$s]}
		port_open "$port" && die "port $port (for $s) is in use; set BASE_PORT"
	done

	log "building the upstream, idleconns and rampart (coraza $CORAZA)"
	case $CORAZA in
	patched)
		bash "$ROOT/waf/corazapatch/prepare.sh" "$ROOT/build" >"$LOGS/coraza.log" 2>&1 ||
			die "preparing the patched Coraza failed; see $LOGS/coraza.log"
		export GOFLAGS="-modfile=$ROOT/build/rampart.mod"
		;;
	stock) export GOFLAGS= ;;
	*) die "CORAZA must be patched or stock, not $CORAZA" ;;
	esac
	go_build "$OUT/upstream" ./bench/upstream || die "building bench/upstream failed; see $LOGS/build-upstream.log"
	go_build "$OUT/idleconns" ./bench/idleconns || die "building bench/idleconns failed; see $LOGS/build-idleconns.log"
	if has "$PROXIES" fasthttp; then
		go_build "$OUT/bareproxy" ./bench/bareproxy || die "building bench/bareproxy failed; see $LOGS/build-bareproxy.log"
	fi
	if has "$PROXIES" evloop; then
		go_build "$OUT/evloop" ./bench/evloop || die "building bench/evloop failed; see $LOGS/build-evloop.log"
	fi
	if has "$PROXIES" rampart || has "$PROXIES" rampart-metrics; then
		if [[ ! -d $ROOT/cmd/rampart ]] || ! go_build "$OUT/rampart" ./cmd/rampart; then
			log "SKIPPING rampart: 'go build ./cmd/rampart' failed (see $LOGS/build-rampart.log)"
			PROXIES=$(echo ",$PROXIES," | sed 's/,rampart,/,/; s/^,//; s/,$//')
		fi
	fi

	write_configs
	if has "$PROXIES" rampart && ! "$OUT/rampart" validate --config "$OUT/rampart.yaml" >"$LOGS/rampart-validate.log" 2>&1; then
		log "SKIPPING rampart: its config does not validate: $(head -c 300 "$LOGS/rampart-validate.log")"
		PROXIES=$(echo ",$PROXIES," | sed 's/,rampart,/,/; s/^,//; s/,$//')
	fi
	has "$PROXIES" nginx && { "$NGINX" -t -p "$OUT/nginx" -e "$LOGS/nginx-error.log" -c "$OUT/nginx/nginx.conf" \
		>"$LOGS/nginx-test.log" 2>&1 || die "nginx -t failed; see $LOGS/nginx-test.log"; }
	has "$PROXIES" haproxy && { "$HAPROXY" -c -f "$OUT/haproxy/haproxy.cfg" >"$LOGS/haproxy-test.log" 2>&1 ||
		die "haproxy -c failed; see $LOGS/haproxy-test.log"; }

	VERSIONS="$("$GO" version | awk '{print $3}'), $( (wrk -v 2>&1 || true) | awk 'NR == 1 {print "wrk", $2}')"
	has "$PROXIES" nginx && VERSIONS+=", $( ("$NGINX" -v 2>&1 || true) | sed 's/.*version: //')"
	has "$PROXIES" haproxy && VERSIONS+=", $( ("$HAPROXY" -v 2>&1 || true) | awk 'NR == 1 {print "haproxy", $3}')"
	has "$PROXIES" rampart-base && VERSIONS+=", rampart-base $( ("$RAMPART_BASE" version 2>/dev/null || true) | awk 'NR == 1 { print $NF }')"
	has "$PROXIES" rampart && VERSIONS+=", $( ("$OUT/rampart" version 2>/dev/null || true) | awk 'NR == 1 { print ($1 == "rampart" ? "" : "rampart ") $0 }')"
	if has "$SCENARIOS" h2; then
		VERSIONS+=", $( (h2load --version 2>&1 || true) | awk 'NR == 1 {print $2}')"
		has "$H2_PROXIES" caddy && VERSIONS+=", caddy $( (caddy version 2>&1 || true) | awk 'NR == 1 {print $1}')"
	fi

	start_upstream
	local active=""
	for s in ${PROXIES//,/ }; do
		if start_proxy "$s" && check_proxy "$s"; then
			active+="${active:+,}$s"
		else
			log "SKIPPING $s: it did not start or answered wrongly"
			[[ $s != direct ]] && stop_proxy "$s"
		fi
	done
	PROXIES=$active
	[[ -n $PROXIES ]] || die "nothing to benchmark"
	log "proxies: $PROXIES; scenarios: $SCENARIOS; $ROUNDS round(s) of $DURATION"

	local load=() round name
	for s in ${SCENARIOS//,/ }; do is_own "$s" || load+=("$s"); done
	if ((${#load[@]})); then
		log "warming up ($WARMUP per proxy and scenario)"
		for s in "${load[@]}"; do
			for name in ${PROXIES//,/ }; do
				run_wrk "$s" "$name" "$WARMUP" "$LOGS/warmup-$s-$name.txt" || log "warm-up failed for $s/$name"
			done
		done
		for round in $(seq 1 "$ROUNDS"); do
			for s in "${load[@]}"; do
				for name in ${PROXIES//,/ }; do
					measure "$s" "$name" "$round"
				done
			done
		done
	fi
	if has "$SCENARIOS" idle; then
		for name in ${IDLE_PROXIES//,/ }; do
			[[ $name == direct ]] && continue
			has "$PROXIES" "$name" && idle "$name"
		done
	fi
	if has "$SCENARIOS" balance; then balance_scenario; fi
	if has "$SCENARIOS" ratelimit; then ratelimit_scenario; fi
	if has "$SCENARIOS" tls; then tls_scenario; fi
	if has "$SCENARIOS" waf; then waf_scenario; fi
	if has "$SCENARIOS" h2; then h2_scenario; fi
	if has "$SCENARIOS" auth; then auth_scenario; fi
	if has "$SCENARIOS" compress; then compress_scenario; fi
	if has "$SCENARIOS" cache; then cache_scenario; fi
	if has "$SCENARIOS" trace; then trace_scenario; fi
	report
}

main "$@"
