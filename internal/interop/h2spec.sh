#!/usr/bin/env bash
# h2spec (HTTP/2 conformance, 145 tests) against a TLS+h2 listener.
#
#   h2spec.sh run [--min N] HOST:PORT
#       run h2spec over TLS against HOST:PORT (certificate not verified),
#       print the failed tests and a summary line, exit 1 if fewer than N
#       of the tests passed (default: all of them).
#   h2spec.sh nginx [--min N]      self-contained: nginx, TLS+h2, in front of
#   h2spec.sh caddy [--min N]      bench/upstream (a fasthttp HTTP/1.1 server)
#   h2spec.sh rampart [--min N] [BINARY]
#       the same with Rampart (default bin/rampart), a TLS listener with
#       protocols [h2, http1]; config in $H2SPEC_OUT/rampart.yaml.
#
# Settings (environment, defaults in brackets):
#   INTEROP_TOOLS    [build/tools]  where make deps put h2spec
#   H2SPEC_OUT       [build/h2spec] configs, certificate, logs, report.xml
#   H2SPEC_BASE_PORT [19490]        upstream; the proxy's TLS port is the next
#   H2SPEC_TIMEOUT   [2]            h2spec's per-test timeout in seconds (-o)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${INTEROP_TOOLS:-$ROOT/build/tools}
OUT=${H2SPEC_OUT:-$ROOT/build/h2spec}
BASE_PORT=${H2SPEC_BASE_PORT:-19490}
PER_TEST=${H2SPEC_TIMEOUT:-2}
H2SPEC=$TOOLS/h2spec
TOTAL=145 # h2spec v2.2.1's tests (h2spec --dryrun)

NAME=h2spec
# shellcheck source=internal/interop/common.sh
source "$ROOT/internal/interop/common.sh"

# run [--min N] HOST:PORT
cmd_run() {
	local min=$TOTAL addr=""
	while (($#)); do
		case $1 in
		--min) min=$2 && shift ;;
		-*) die "run: unknown flag $1" ;;
		*) addr=$1 ;;
		esac
		shift
	done
	[[ $addr == *:* ]] || die "run: want HOST:PORT, got '$addr'"
	[[ -x $H2SPEC ]] || die "no $H2SPEC: run make deps"
	mkdir -p "$OUT/logs"
	local report=$OUT/report-${addr//[:.]/-}.xml text=$OUT/logs/h2spec-${addr//[:.]/-}.txt
	rm -f "$report"
	# 145 tests of at most PER_TEST seconds each, most far quicker.
	timeout -k 5 $((TOTAL * PER_TEST + 60)) "$H2SPEC" -t -k -h "${addr%:*}" -p "${addr##*:}" \
		-o "$PER_TEST" -j "$report" >"$text" 2>&1 || true
	[[ -s $report ]] || die "h2spec wrote no report; see $text"
	# The JUnit report: one <testcase> per test, with an <error> (h2spec's
	# word for a failed test), <failure> or <skipped> child when it did not
	# pass; package is the spec and section ("http2/6.5.3").
	local counts
	counts=$(awk '
		/<testcase / {
			n++; cur = $0
			sub(/.*package="/, "", cur); sub(/".*/, "", cur); pkg = cur
			cur = $0; sub(/.*classname="/, "", cur); sub(/".*/, "", cur); cls = cur
		}
		/<error|<failure/ { f++; print "FAILED " pkg ": " cls > "/dev/stderr" }
		/<skipped/ { s++; print "SKIPPED " pkg ": " cls > "/dev/stderr" }
		END { printf "%d %d %d", n, f, s }' "$report" 2>"$OUT/logs/failed.txt")
	local n f s passed summary
	read -r n f s <<<"$counts"
	passed=$((n - f - s))
	sed 's/&#34;/"/g; s/&#39;/'"'"'/g; s/&quot;/"/g; s/&amp;/\&/g; s/&lt;/</g; s/&gt;/>/g' "$OUT/logs/failed.txt"
	echo "h2spec $addr: $passed of $n passed, $f failed, $s skipped (bar: $min; report $report, log $text)"
	((n == TOTAL)) || log "warning: the report holds $n tests, not $TOTAL"
	# h2spec's own last line ("145 tests, 120 passed, 0 skipped, 25 failed")
	# must agree with what was read from the report.
	summary=$(grep -E '^[0-9]+ tests, ' "$text" | tail -n 1 || true)
	[[ $summary == "$n tests, $passed passed, $s skipped, $f failed" ]] ||
		log "warning: h2spec printed '$summary', the report says $n tests, $passed passed, $s skipped, $f failed"
	((passed >= min))
}

# make_cert: a self-signed ECDSA P-256 certificate, made at run time.
make_cert() {
	mkdir -p "$OUT/tls" "$OUT/logs"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=h2spec.rampart.test" -addext "subjectAltName=DNS:h2spec.rampart.test,IP:127.0.0.1" \
		-keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" >"$OUT/logs/openssl.log" 2>&1 ||
		die "openssl failed; see $OUT/logs/openssl.log"
}

# start_upstream: bench/upstream on BASE_PORT.
start_upstream() {
	local go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
	(cd "$ROOT" && "$go" build -o "$OUT/upstream" ./bench/upstream) >"$OUT/logs/build-upstream.log" 2>&1 ||
		die "building bench/upstream failed; see $OUT/logs/build-upstream.log"
	port_open "$BASE_PORT" && die "port $BASE_PORT is in use; set H2SPEC_BASE_PORT"
	port_open "$((BASE_PORT + 1))" && die "port $((BASE_PORT + 1)) is in use; set H2SPEC_BASE_PORT"
	start_bg "$OUT/logs/upstream.log" env GOMAXPROCS=1 "$OUT/upstream" -addr "127.0.0.1:$BASE_PORT"
	wait_port "$BASE_PORT" "$BG_PID" || die "the upstream did not start; see $OUT/logs/upstream.log"
}

# proxy NAME [--min N] [BINARY]: start NAME on BASE_PORT+1, TLS+h2, then run.
cmd_proxy() {
	local name=$1 min=$TOTAL bin="" port=$((BASE_PORT + 1)) user_line=""
	shift
	while (($#)); do
		case $1 in
		--min) min=$2 && shift ;;
		*) bin=$1 ;;
		esac
		shift
	done
	make_cert
	case $name in
	nginx)
		local nginx
		nginx=$(command -v nginx || echo /usr/sbin/nginx)
		[[ -x $nginx ]] || die "no nginx (apt-get install nginx)"
		((EUID == 0)) && user_line="user root;"
		mkdir -p "$OUT/nginx"
		cat >"$OUT/nginx/nginx.conf" <<EOF
# Generated by internal/interop/h2spec.sh.
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
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $OUT/tls/cert.pem;
        ssl_certificate_key $OUT/tls/key.pem;
        location / {
            proxy_pass http://127.0.0.1:$BASE_PORT;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
		start_upstream
		start_bg "$OUT/logs/nginx.log" "$nginx" -p "$OUT/nginx" -e "$OUT/logs/nginx-error.log" -c "$OUT/nginx/nginx.conf"
		log "$("$nginx" -v 2>&1 | sed 's/.*version: //'), TLS+h2 on $port"
		;;
	caddy)
		command -v caddy >/dev/null || die "no caddy (apt-get install caddy)"
		mkdir -p "$OUT/caddy"
		cat >"$OUT/caddy/Caddyfile" <<EOF
# Generated by internal/interop/h2spec.sh.
{
	admin off
	auto_https off
	storage file_system $OUT/caddy/data
	servers {
		protocols h1 h2
	}
}
https://127.0.0.1:$port {
	tls $OUT/tls/cert.pem $OUT/tls/key.pem
	reverse_proxy 127.0.0.1:$BASE_PORT
}
EOF
		start_upstream
		start_bg "$OUT/logs/caddy.log" env HOME="$OUT/caddy" XDG_DATA_HOME="$OUT/caddy/data" XDG_CONFIG_HOME="$OUT/caddy/config" \
			caddy run --adapter caddyfile --config "$OUT/caddy/Caddyfile"
		log "caddy $(caddy version | awk '{print $1}'), TLS+h2 on $port"
		;;
	rampart)
		bin=${bin:-$ROOT/bin/rampart}
		[[ -x $bin ]] || die "no Rampart binary at $bin (make build)"
		cat >"$OUT/rampart.yaml" <<EOF
# Generated by internal/interop/h2spec.sh.
listeners:
  tls:
    address: "127.0.0.1:$port"
    protocols: [h2, http1]
    tls:
      certificates:
        - cert_file: $OUT/tls/cert.pem
          key_file: $OUT/tls/key.pem
upstreams:
  up:
    targets:
      - url: http://127.0.0.1:$BASE_PORT
routes:
  - name: all
    upstream: up
access_log: {path: off}
EOF
		if ! "$bin" validate --config "$OUT/rampart.yaml" >"$OUT/logs/rampart-validate.log" 2>&1; then
			log "Rampart does not accept $OUT/rampart.yaml (no HTTP/2 yet?): $(head -c 300 "$OUT/logs/rampart-validate.log")"
			exit 1
		fi
		start_upstream
		start_bg "$OUT/logs/rampart.log" "$bin" run --config "$OUT/rampart.yaml"
		log "$("$bin" version 2>&1 | head -n 1), TLS listener protocols [h2, http1] on $port"
		;;
	esac
	wait_port "$port" "$BG_PID" || die "$name did not start; see $OUT/logs/$name*.log"
	cmd_run --min "$min" "127.0.0.1:$port"
}

case ${1:-} in
run)
	shift
	cmd_run "$@"
	;;
nginx | caddy | rampart) cmd_proxy "$@" ;;
*)
	sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
