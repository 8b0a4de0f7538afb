#!/usr/bin/env bash
# grpc-go's interop suite (v1.85.0) through a proxy: the interop server
# behind it, the interop client's 14 cases in front of it, over h2c and TLS.
#
#   interop.sh cases [--tls] [--ca FILE] [--server-name NAME] HOST:PORT
#       run the 14 cases against a proxy at HOST:PORT that forwards to a
#       running interop server; prints PASS/FAIL per case, exits 1 on any FAIL.
#   interop.sh server PORT
#       run the interop server (plaintext, in the foreground) on 127.0.0.1:PORT.
#   interop.sh nginx
#       self-contained: interop server, nginx (grpc_pass) with an h2c and a
#       TLS+h2 listener, then `cases` over each. Proves the harness.
#   interop.sh rampart [BINARY]
#       the same with Rampart (default bin/rampart; config written to
#       $INTEROP_OUT/rampart.yaml): an h2c listener and a TLS listener
#       (protocols [h2, http1]), upstream protocol http2 to the server.
#
# The binaries come from `make deps` (build/tools/grpc-interop-{server,client}).
# Settings (environment, defaults in brackets):
#   INTEROP_TOOLS      [build/tools]  where make deps put the binaries
#   INTEROP_OUT        [build/interop] generated configs, certificates, logs
#   INTEROP_BASE_PORT  [19480] server; the proxy's h2c and TLS ports are the next two
#   INTEROP_CASES      [the 14]       comma-separated cases to run
#   INTEROP_CASE_TIMEOUT [20]         seconds allowed to one case
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${INTEROP_TOOLS:-$ROOT/build/tools}
OUT=${INTEROP_OUT:-$ROOT/build/interop}
BASE_PORT=${INTEROP_BASE_PORT:-19480}
CASE_TIMEOUT=${INTEROP_CASE_TIMEOUT:-20}
ALL_CASES=empty_unary,large_unary,client_streaming,server_streaming,ping_pong,empty_stream,timeout_on_sleeping_server,cancel_after_begin,cancel_after_first_response,status_code_and_message,special_status_message,custom_metadata,unimplemented_method,unimplemented_service
CASES=${INTEROP_CASES:-$ALL_CASES}
SERVER_BIN=$TOOLS/grpc-interop-server/server
CLIENT_BIN=$TOOLS/grpc-interop-client/client
SERVER_NAME=interop.rampart.test

NAME=interop
# shellcheck source=internal/interop/common.sh
source "$ROOT/internal/interop/common.sh"

need_tools() {
	[[ -x $SERVER_BIN && -x $CLIENT_BIN ]] ||
		die "no interop binaries in $TOOLS (grpc-interop-server/server, grpc-interop-client/client): run make deps"
}

# cases [--tls] [--ca FILE] [--server-name NAME] HOST:PORT
cmd_cases() {
	local tls=0 ca="" name="" addr="" label
	while (($#)); do
		case $1 in
		--tls) tls=1 ;;
		--ca) ca=$2 && shift ;;
		--server-name) name=$2 && shift ;;
		-*) die "cases: unknown flag $1" ;;
		*) addr=$1 ;;
		esac
		shift
	done
	[[ $addr == *:* ]] || die "cases: want HOST:PORT, got '$addr'"
	need_tools
	mkdir -p "$OUT/logs"
	local host=${addr%:*} port=${addr##*:}
	local args=(--server_host="$host" --server_port="$port")
	label=h2c
	if ((tls)); then
		label=tls
		args+=(--use_tls)
		[[ -n $ca ]] && args+=(--use_test_ca --ca_file="$ca")
		[[ -n $name ]] && args+=(--server_host_override="$name")
	fi
	local c pass=0 fail=0 failed="" t0 t1 rc out
	for c in ${CASES//,/ }; do
		out=$OUT/logs/client-$label-$c.log
		t0=$(date +%s%N)
		rc=0
		timeout -k 2 "$CASE_TIMEOUT" "$CLIENT_BIN" "${args[@]}" --test_case="$c" >"$out" 2>&1 || rc=$?
		t1=$(date +%s%N)
		local secs
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
		if ((rc == 0)); then
			pass=$((pass + 1))
			printf 'PASS %-4s %-28s %6ss\n' "$label" "$c" "$secs"
		else
			fail=$((fail + 1))
			failed+=" $c"
			((rc == 124)) && echo "timed out after ${CASE_TIMEOUT}s" >>"$out"
			printf 'FAIL %-4s %-28s %6ss (exit %s) %s\n' "$label" "$c" "$secs" "$rc" \
				"$(grep -v '^$' "$out" | tail -n 1 | cut -c1-300)"
		fi
	done
	echo "interop $label $addr: $pass passed, $fail failed${failed:+ (failed:$failed)}"
	((fail == 0))
}

# start_server PORT: the interop server, plaintext, on 127.0.0.1:PORT.
start_server() {
	port_open "$1" && die "port $1 is in use; set INTEROP_BASE_PORT"
	start_bg "$OUT/logs/server.log" "$SERVER_BIN" --port="$1"
	wait_port "$1" "$BG_PID" || die "the interop server did not start; see $OUT/logs/server.log"
}

# make_cert: a self-signed ECDSA P-256 certificate for SERVER_NAME and
# 127.0.0.1, made at run time; the client trusts it as its root.
make_cert() {
	mkdir -p "$OUT/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=$SERVER_NAME" -addext "subjectAltName=DNS:$SERVER_NAME,IP:127.0.0.1" \
		-keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" >"$OUT/logs/openssl.log" 2>&1 ||
		die "openssl failed; see $OUT/logs/openssl.log"
}

# both H2C_PORT TLS_PORT: the cases over h2c, then over TLS; 1 if any failed.
both() {
	local rc=0
	cmd_cases "127.0.0.1:$1" || rc=1
	cmd_cases --tls --ca "$OUT/tls/cert.pem" --server-name "$SERVER_NAME" "127.0.0.1:$2" || rc=1
	return "$rc"
}

cmd_nginx() {
	need_tools
	local nginx srv=$BASE_PORT h2c=$((BASE_PORT + 1)) tls=$((BASE_PORT + 2))
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	[[ -x $nginx ]] || die "no nginx (apt-get install nginx)"
	mkdir -p "$OUT/logs" "$OUT/nginx"
	make_cert
	local user_line=""
	((EUID == 0)) && user_line="user root;"
	cat >"$OUT/nginx/nginx.conf" <<EOF
# Generated by internal/interop/interop.sh.
$user_line
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/logs/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/client_body;
    proxy_temp_path $OUT/nginx/proxy;
    fastcgi_temp_path $OUT/nginx/fastcgi;
    uwsgi_temp_path $OUT/nginx/uwsgi;
    scgi_temp_path $OUT/nginx/scgi;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$h2c http2;
        location / { grpc_pass grpc://127.0.0.1:$srv; }
    }
    server {
        listen 127.0.0.1:$tls ssl http2;
        ssl_certificate $OUT/tls/cert.pem;
        ssl_certificate_key $OUT/tls/key.pem;
        location / { grpc_pass grpc://127.0.0.1:$srv; }
    }
}
EOF
	"$nginx" -t -p "$OUT/nginx" -e "$OUT/logs/nginx-error.log" -c "$OUT/nginx/nginx.conf" >"$OUT/logs/nginx-test.log" 2>&1 ||
		die "nginx -t failed; see $OUT/logs/nginx-test.log"
	for p in $h2c $tls; do port_open "$p" && die "port $p is in use; set INTEROP_BASE_PORT"; done
	start_server "$srv"
	start_bg "$OUT/logs/nginx.log" "$nginx" -p "$OUT/nginx" -e "$OUT/logs/nginx-error.log" -c "$OUT/nginx/nginx.conf"
	wait_port "$tls" "$BG_PID" || die "nginx did not start; see $OUT/logs/nginx-error.log"
	log "$("$nginx" -v 2>&1 | sed 's/.*version: //') with grpc_pass: h2c on $h2c, TLS+h2 on $tls, interop server on $srv"
	both "$h2c" "$tls"
}

cmd_rampart() {
	need_tools
	local bin=${1:-$ROOT/bin/rampart} srv=$BASE_PORT h2c=$((BASE_PORT + 1)) tls=$((BASE_PORT + 2))
	[[ -x $bin ]] || die "no Rampart binary at $bin (make build)"
	mkdir -p "$OUT/logs"
	make_cert
	cat >"$OUT/rampart.yaml" <<EOF
# Generated by internal/interop/interop.sh.
listeners:
  h2c:
    address: "127.0.0.1:$h2c"
    protocols: [h2c]
  tls:
    address: "127.0.0.1:$tls"
    protocols: [h2, http1]
    tls:
      certificates:
        - cert_file: $OUT/tls/cert.pem
          key_file: $OUT/tls/key.pem
upstreams:
  interop:
    protocol: http2
    targets:
      - url: http://127.0.0.1:$srv
routes:
  - name: interop
    upstream: interop
access_log: {path: off}
EOF
	if ! "$bin" validate --config "$OUT/rampart.yaml" >"$OUT/logs/rampart-validate.log" 2>&1; then
		log "Rampart does not accept $OUT/rampart.yaml (no HTTP/2 yet?): $(head -c 300 "$OUT/logs/rampart-validate.log")"
		exit 1
	fi
	for p in $h2c $tls; do port_open "$p" && die "port $p is in use; set INTEROP_BASE_PORT"; done
	start_server "$srv"
	start_bg "$OUT/logs/rampart.log" "$bin" run --config "$OUT/rampart.yaml"
	wait_port "$tls" "$BG_PID" && wait_port "$h2c" "$BG_PID" || die "Rampart did not start; see $OUT/logs/rampart.log"
	log "$("$bin" version 2>&1 | head -n 1): h2c on $h2c, TLS on $tls, interop server on $srv"
	both "$h2c" "$tls"
}

case ${1:-} in
cases)
	shift
	cmd_cases "$@"
	;;
server)
	need_tools
	[[ -n ${2:-} ]] || die "server: want PORT"
	exec "$SERVER_BIN" --port="$2"
	;;
nginx) cmd_nginx ;;
rampart)
	shift
	cmd_rampart "$@"
	;;
*)
	sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
