# shellcheck shell=bash
# The "waf" scenario of bench/run.sh, which sources this file: Rampart with
# its embedded OWASP CRS against nginx + ModSecurity v3 + the CRS (Debian's
# libnginx-mod-http-modsecurity and modsecurity-crs, installed with apt-get
# when missing), both at paranoia level 1 in blocking mode with an inbound
# anomaly threshold of 5, in front of run.sh's upstream (UPSTREAM_PORT).
#
# Both run the engine the same way: SecRuleEngine On, SecRequestBodyAccess
# On, the JSON and XML body processors chosen by Content-Type, a 1 MiB body
# limit, no response inspection, no audit log. The CRS versions differ:
# Rampart embeds CRS v4 (coraza-coreruleset), Debian ships CRS 3.3.
#
# Rampart runs twice: "rampart" with its default policy (Rampart's own rules
# on top of the CRS, docs/waf-rules.md) and "rampart-stock" with
# rampart_rules: off (stock CRS), so that the rules' cost is read from the
# same run (issue 20: at most 15%).
#
# Two benign requests, each driven by wrk like run.sh's get scenario:
#   get   GET /search with five query arguments and browser headers (a cookie
#         included), Host shop.example.com (a numeric Host is a CRS finding)
#   post  POST of a 16 KiB JSON body of 200 values (40 objects of 5 fields)
# Before measuring, each proxy must refuse GET /?id=1' OR '1'='1 with 403 and
# serve both benign requests without a rule matching (Rampart: checked with
# `rampart waf test`; nginx: nothing from ModSecurity in its error log).
#
# Settings (environment variables, defaults in brackets), beside run.sh's:
#   WAF_PORT        [BASE_PORT+70]  Rampart's port; nginx uses the next
#   WAF_POST_CONNS  [8]   wrk connections of the POST (the GET uses CONNS):
#                         a POST costs tens of milliseconds of CPU, so with
#                         CONNS=50 each one waits seconds in line, close to
#                         wrk's 5 s timeout, and a short run would measure
#                         mostly the line filling up
#   WAF_GET_TARGET  [4]   Rampart/nginx+ModSecurity req/s the GET must reach (issue 19)
#   WAF_POST_TARGET [10]  the same for the POST
#   WAF_CPUPROFILE  [0]   1: profile Rampart (run --cpuprofile) over the whole
#                         scenario; the top of `go tool pprof -top` goes to
#                         bench/.out/logs/waf-pprof-top.txt
#   GOGC            [unset] passed on to Rampart (unset: Rampart uses 400)
#
# Pinning as in run.sh: each proxy alone on PROXY_CPU (Rampart with
# GOMAXPROCS=1, nginx with one worker), wrk and the upstream on LOAD_CPU.
# Results: bench/.out/waf.tsv (every run) and a table in results.md (medians
# over rounds).

WAF_PORT=${WAF_PORT:-$((BASE_PORT + 70))}
WAF_GET_TARGET=${WAF_GET_TARGET:-4}
WAF_POST_TARGET=${WAF_POST_TARGET:-10}
WAF_CPUPROFILE=${WAF_CPUPROFILE:-0}
WAF_POST_CONNS=${WAF_POST_CONNS:-8}
WAF_CRS_RULES=/usr/share/modsecurity-crs/rules
WAF_CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf
WAF_NGINX_MODULE=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
WAF_HOST=shop.example.com
WAF_GET_PATH="/search?q=running+shoes&category=sport&page=2&sort=price_asc&lang=en"
WAF_ATTACK_PATH="/?id=1%27%20OR%20%271%27%3D%271" # ?id=1' OR '1'='1
declare -A WAF_PORTS=([rampart]=$WAF_PORT [nginx-modsec]=$((WAF_PORT + 1)) [rampart-stock]=$((WAF_PORT + 2)))
declare -A WAF_PIDS=()
WAF_PROXIES="rampart rampart-stock nginx-modsec"
WAF_VERSIONS=""

# waf_install: the nginx module and the CRS from apt when missing; 1 when
# they cannot be had.
waf_install() {
	[[ -f $WAF_NGINX_MODULE && -d $WAF_CRS_RULES && -f $WAF_CRS_SETUP ]] && return 0
	local sudo="" created_policy=0 rc=0
	if ((EUID != 0)); then
		command -v sudo >/dev/null || return 1
		sudo=sudo
	fi
	log "installing libnginx-mod-http-modsecurity and modsecurity-crs with apt-get"
	# Keep the packages' init scripts from starting a system nginx.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		created_policy=1
	fi
	local apt=(${sudo:+"$sudo"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
		libnginx-mod-http-modsecurity modsecurity-crs)
	if ! "${apt[@]}" >"$LOGS/apt-modsecurity.log" 2>&1; then
		$sudo apt-get update >>"$LOGS/apt-modsecurity.log" 2>&1 || true
		"${apt[@]}" >>"$LOGS/apt-modsecurity.log" 2>&1 || rc=1
	fi
	((created_policy)) && $sudo rm -f /usr/sbin/policy-rc.d
	[[ -f $WAF_NGINX_MODULE && -d $WAF_CRS_RULES && -f $WAF_CRS_SETUP ]] || rc=1
	return "$rc"
}

# waf_body: the benign 16 KiB JSON body, exactly 16384 bytes: 40 products of
# 5 fields each (200 values), their descriptions plain English sized to fill.
waf_body() {
	awk -v target=16384 -v n=40 'BEGIN {
		text = "Lightweight running shoe with a breathable mesh upper, a cushioned sole for long distances and reflective details for evening runs. Available in several colours and sizes, machine washable at thirty degrees. "
		fixed = 2 # [ ]
		for (i = 0; i < n; i++) {
			item[i] = sprintf("{\"id\":%d,\"sku\":\"SKU-%05d\",\"name\":\"Trail runner %d\",\"color\":\"blue\",\"description\":\"", i + 1, 1000 + i, i + 1)
			fixed += length(item[i]) + 2 + (i > 0 ? 1 : 0) # "} and the comma
		}
		each = int((target - fixed) / n)
		extra = target - fixed - each * n
		while (length(text) < each + extra + 1) text = text text
		printf "["
		for (i = 0; i < n; i++) {
			d = substr(text, 1, each + (i == n - 1 ? extra : 0))
			sub(/ $/, ".", d)
			printf "%s%s%s\"}", (i > 0 ? "," : ""), item[i], d
		}
		printf "]"
	}'
}

# waf_config: Rampart's and nginx's configurations and the wrk scripts.
waf_config() {
	mkdir -p "$OUT/waf/nginx" "$OUT/waf/modsec-tmp"
	cat >"$OUT/rampart-waf.yaml" <<EOF
# Generated by bench/scenario_waf.sh.
listeners:
  bench:
    address: "127.0.0.1:${WAF_PORTS[rampart]}"
upstreams:
  bench:
    targets:
      - url: http://127.0.0.1:$UPSTREAM_PORT
waf:
  crs:
    mode: block
    paranoia_level: 1
    anomaly_threshold: 5
    request_body_limit: 1MiB
routes:
  - name: waf
    upstream: bench
    waf: crs
access_log: {path: off}
EOF
	sed -e "s/127.0.0.1:${WAF_PORTS[rampart]}/127.0.0.1:${WAF_PORTS[rampart-stock]}/" \
		-e 's/^    request_body_limit: 1MiB$/    request_body_limit: 1MiB\n    rampart_rules: off/' \
		"$OUT/rampart-waf.yaml" >"$OUT/rampart-waf-stock.yaml"

	# As Rampart's engine settings (waf/seclang.go) and the CRS setup with
	# the same level and threshold.
	cat >"$OUT/waf/modsecurity.conf" <<EOF
# Generated by bench/scenario_waf.sh.
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 1048577
SecRequestBodyNoFilesLimit 1048577
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecResponseBodyAccess Off
SecTmpDir $OUT/waf/modsec-tmp
SecDataDir $OUT/waf/modsec-tmp
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
SecStatusEngine Off
Include $WAF_CRS_SETUP
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.paranoia_level=1"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4"
Include $WAF_CRS_RULES/*.conf
EOF

	local user_line=""
	((EUID == 0)) && user_line="user root;"
	# run.sh's nginx configuration, plus the module.
	cat >"$OUT/waf/nginx/nginx.conf" <<EOF
# Generated by bench/scenario_waf.sh.
load_module $WAF_NGINX_MODULE;
$user_line
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
master_process on;
pid $OUT/waf/nginx/nginx.pid;
error_log $LOGS/nginx-modsec-error.log warn;

events {
    worker_connections $NGINX_CONNS;
}

http {
    access_log off;
    client_body_temp_path $OUT/waf/nginx/client_body;
    proxy_temp_path $OUT/waf/nginx/proxy;
    fastcgi_temp_path $OUT/waf/nginx/fastcgi;
    uwsgi_temp_path $OUT/waf/nginx/uwsgi;
    scgi_temp_path $OUT/waf/nginx/scgi;

    keepalive_timeout 75s;
    keepalive_requests 1000000;
    # Keep the 16 KiB POST body in memory rather than in a temporary file.
    client_body_buffer_size 64k;
    client_max_body_size 2m;

    modsecurity on;
    modsecurity_rules_file $OUT/waf/modsecurity.conf;

    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:${WAF_PORTS[nginx-modsec]} backlog=4096;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

	waf_body >"$OUT/waf/post.json"
	local headers
	headers=$(
		cat <<EOF
wrk.headers["Host"] = "$WAF_HOST"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.5"
wrk.headers["Referer"] = "https://$WAF_HOST/"
wrk.headers["Cookie"] = "session=3f2a9c4e7b1d; theme=dark"
EOF
	)
	{
		echo "-- Generated by bench/scenario_waf.sh: a benign GET with query arguments."
		echo "wrk.method = \"GET\""
		echo "wrk.path = \"$WAF_GET_PATH\""
		echo "$headers"
		cat "$OUT/common.lua"
	} >"$OUT/waf-get.lua"
	{
		echo "-- Generated by bench/scenario_waf.sh: a benign 16 KiB JSON POST of 200 values."
		echo "wrk.method = \"POST\""
		echo "wrk.path = \"/api/cart\""
		echo "$headers"
		echo "wrk.headers[\"Accept\"] = \"application/json\""
		echo "wrk.headers[\"Content-Type\"] = \"application/json\""
		echo "local f = assert(io.open(\"$OUT/waf/post.json\", \"rb\"))"
		echo "wrk.body = f:read(\"*a\")"
		echo "f:close()"
		cat "$OUT/common.lua"
	} >"$OUT/waf-post.lua"
}

# waf_curl NAME VARIANT: the benign request as wrk sends it, with curl; prints
# the answer's body.
waf_curl() {
	local name=$1 variant=$2
	local h=(-H "Host: $WAF_HOST" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
		-H "Accept-Language: en-GB,en;q=0.5" -H "Referer: https://$WAF_HOST/" -H "Cookie: session=3f2a9c4e7b1d; theme=dark")
	case $variant in
	get) curl -sS --max-time 5 "${h[@]}" -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" \
		"http://127.0.0.1:${WAF_PORTS[$name]}$WAF_GET_PATH" 2>&1 ;;
	post) curl -sS --max-time 5 "${h[@]}" -H "Accept: application/json" -H "Content-Type: application/json" \
		--data-binary "@$OUT/waf/post.json" "http://127.0.0.1:${WAF_PORTS[$name]}/api/cart" 2>&1 ;;
	esac
}

# waf_check NAME: the attack gets 403, the benign requests their answer with
# no rule matching; 1 otherwise.
waf_check() {
	local name=$1 got before
	got=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Host: $WAF_HOST" \
		"http://127.0.0.1:${WAF_PORTS[$name]}$WAF_ATTACK_PATH" 2>&1) || true
	if [[ $got != 403 ]]; then
		log "waf: $name answered GET /?id=1' OR '1'='1 with '${got:0:200}', want 403"
		return 1
	fi
	log "waf: $name refuses GET /?id=1' OR '1'='1 with 403"
	before=$(wc -l <"$LOGS/nginx-modsec-error.log" 2>/dev/null || echo 0)
	got=$(waf_curl "$name" get) || true
	if [[ $got != "Hello, World!" ]]; then
		log "waf: $name: the benign GET returned '${got:0:200}', want 'Hello, World!'"
		return 1
	fi
	got=$(waf_curl "$name" post) || true
	if [[ $got != "received 16384" ]]; then
		log "waf: $name: the benign POST returned '${got:0:200}', want 'received 16384'"
		return 1
	fi
	if [[ $name == nginx-modsec ]]; then
		if tail -n +"$((before + 1))" "$LOGS/nginx-modsec-error.log" | grep -q 'ModSecurity: '; then
			log "waf: ModSecurity matched rules on a benign request: $(tail -n +"$((before + 1))" "$LOGS/nginx-modsec-error.log" | grep 'ModSecurity: ' | head -c 600)"
			return 1
		fi
		return 0
	fi
	# Rampart: the same requests through `rampart waf test`, which lists the
	# rules that matched.
	local common=(--config "$OUT/rampart-waf.yaml" --route waf -H "Host: $WAF_HOST"
		-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
		-H "Accept-Language: en-GB,en;q=0.5" -H "Referer: https://$WAF_HOST/" -H "Cookie: session=3f2a9c4e7b1d; theme=dark")
	if ! "$OUT/rampart" waf test "${common[@]}" -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" \
		"$WAF_GET_PATH" >"$LOGS/waf-test-get.txt" 2>&1 || ! grep -q 'verdict: *pass' "$LOGS/waf-test-get.txt"; then
		log "waf: rampart matched rules on the benign GET; see $LOGS/waf-test-get.txt"
		return 1
	fi
	if ! "$OUT/rampart" waf test "${common[@]}" -H "Accept: application/json" -H "Content-Type: application/json" \
		--data-binary "@$OUT/waf/post.json" /api/cart >"$LOGS/waf-test-post.txt" 2>&1 ||
		! grep -q 'verdict: *pass' "$LOGS/waf-test-post.txt"; then
		log "waf: rampart matched rules on the benign POST; see $LOGS/waf-test-post.txt"
		return 1
	fi
}

# waf_start NAME: start it and check it; 1 on failure.
waf_start() {
	local name=$1 port=${WAF_PORTS[$1]}
	port_open "$port" && die "port $port (waf, $name) is in use; set WAF_PORT"
	case $name in
	rampart)
		local prof=()
		((WAF_CPUPROFILE)) && prof=(--cpuprofile "$OUT/waf/rampart.cpu.pprof")
		start_bg "$LOGS/rampart-waf.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/rampart" run --config "$OUT/rampart-waf.yaml" "${prof[@]}"
		;;
	rampart-stock)
		start_bg "$LOGS/rampart-waf-stock.log" env GOMAXPROCS=1 taskset -c "$PROXY_CPU" \
			"$OUT/rampart" run --config "$OUT/rampart-waf-stock.yaml"
		;;
	nginx-modsec)
		rm -f "$OUT/waf/nginx/nginx.pid"
		start_bg "$LOGS/nginx-modsec.log" taskset -c "$PROXY_CPU" \
			"$NGINX" -p "$OUT/waf/nginx" -e "$LOGS/nginx-modsec-error.log" -c "$OUT/waf/nginx/nginx.conf"
		;;
	esac
	WAF_PIDS[$name]=$BG_PID
	# The CRS takes a moment to load in both.
	for _ in $(seq 1 300); do
		kill -0 "$BG_PID" 2>/dev/null || break
		port_open "$port" && break
		sleep 0.1
	done
	if ! port_open "$port"; then
		log "waf: $name did not start; see $LOGS/rampart-waf.log or $LOGS/nginx-modsec-error.log"
		return 1
	fi
	if [[ $name == nginx-modsec ]]; then
		for _ in $(seq 1 100); do
			[[ -n $(children "$BG_PID") ]] && break
			sleep 0.1
		done
		[[ -n $(children "$BG_PID") ]] || {
			log "waf: nginx has no worker process"
			return 1
		}
	fi
	waf_check "$name"
}

waf_stop() {
	local name
	for name in $WAF_PROXIES; do
		[[ -n ${WAF_PIDS[$name]:-} ]] && stop_pid "${WAF_PIDS[$name]}"
		WAF_PIDS[$name]=""
	done
}

# waf_mem_pid NAME: the process whose memory is reported (nginx: the worker).
waf_mem_pid() {
	local p=${WAF_PIDS[$1]} w
	case $1 in
	nginx-modsec)
		w=$(children "$p")
		echo "${w%% *}"
		;;
	*) echo "$p" ;;
	esac
}

# waf_wrk VARIANT NAME DURATION OUTFILE: one wrk run, pinned, bounded in time.
waf_wrk() {
	local n=$CONNS
	[[ $1 == post ]] && n=$WAF_POST_CONNS
	wrk_run "http://127.0.0.1:${WAF_PORTS[$2]}/" "$OUT/waf-$1.lua" "$3" "$4" "$n"
}

# waf_settle: wait (at most 60 s) until neither proxy uses CPU any more. A
# proxy still works through the requests in flight when wrk stops (with a
# POST that costs tens of milliseconds, seconds of work): that must not count
# against the next run, nor delay Rampart's shutdown past stop_pid's patience.
waf_settle() {
	local pids="" name prev cur
	for name in $WAF_PROXIES; do
		[[ -n ${WAF_PIDS[$name]:-} ]] && pids+=" $(cpu_pids "$name" "${WAF_PIDS[$name]}")"
	done
	# shellcheck disable=SC2086
	prev=$(cpu_ticks $pids)
	for _ in $(seq 1 120); do
		sleep 0.5
		# shellcheck disable=SC2086
		cur=$(cpu_ticks $pids)
		((cur - prev <= 1)) && return 0
		prev=$cur
	done
	log "waf: the proxies were still busy 60 s after the load stopped"
}

# waf_measure VARIANT NAME ROUND: one measured run; appends a line to
# waf.tsv: variant proxy round rps p50 p99 cpu_us rss_kib requests
# socket_errors non2xx other%. other% is the share of PROXY_CPU that
# something else than the proxy used during the run: on a shared machine it
# says whether the run was alone.
waf_measure() {
	local v=$1 name=$2 round=$3 out pids mpid t0 t1 hwm line requests dur_us p50 p99 serr non2xx rps cpu_us note=""
	local b0 tot0 b1 tot1 other
	waf_settle
	out="$LOGS/wrk-waf-$v-$name-r$round.txt"
	kill -0 "${WAF_PIDS[$name]}" 2>/dev/null || {
		log "waf: $name is not running; skipped"
		return 0
	}
	pids=$(cpu_pids "$name" "${WAF_PIDS[$name]}")
	mpid=$(waf_mem_pid "$name")
	# shellcheck disable=SC2034 # HWM_LIFETIME is run.sh's, read by its report
	echo 5 >"/proc/$mpid/clear_refs" 2>/dev/null || HWM_LIFETIME=1
	# shellcheck disable=SC2086
	t0=$(cpu_ticks $pids)
	read -r b0 tot0 < <(cpu_busy "$PROXY_CPU")
	waf_wrk "$v" "$name" "$DURATION" "$out" || log "wrk failed for waf/$v/$name; see $out"
	read -r b1 tot1 < <(cpu_busy "$PROXY_CPU")
	# shellcheck disable=SC2086
	t1=$(cpu_ticks $pids)
	other=$(awk -v b=$((b1 - b0)) -v t=$((tot1 - tot0)) -v p=$((t1 - t0)) 'BEGIN { o = (t > 0 ? 100 * (b - p) / t : 0); printf "%.0f", (o < 0 ? 0 : o) }')
	hwm=$(status_kib "$mpid" VmHWM)
	line=$(grep '^RESULT ' "$out" || true)
	if [[ -z $line ]]; then
		log "no result for waf/$v/$name round $round; see $out"
		return 0
	fi
	read -r requests dur_us p50 p99 serr non2xx < <(echo "$line" | sed 's/[a-z0-9_]*=//g; s/^RESULT //')
	rps=$(awk -v r="$requests" -v d="$dur_us" 'BEGIN { printf "%.1f", (d > 0 ? r / (d / 1e6) : 0) }')
	cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.3f", (r > 0 ? t / hz * 1e6 / r : 0) }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$name" "$round" "$rps" "$p50" "$p99" "$cpu_us" \
		"${hwm:--}" "$requests" "$serr" "$non2xx" "$other" >>"$OUT/waf.tsv"
	((serr + non2xx > 0)) && note=" ERRORS: socket=$serr status=$non2xx"
	log "$(printf 'waf %-4s %-12s round %s: %10s req/s  p50 %8s us  p99 %8s us  cpu %9s us/req  hwm %7s KiB  others on CPU%s %s%%%s' \
		"$v" "$name" "$round" "$rps" "$p50" "$p99" "$cpu_us" "${hwm:--}" "$PROXY_CPU" "$other" "$note")"
}

# waf_profile: the top of Rampart's CPU profile (WAF_CPUPROFILE=1), written
# when Rampart stopped.
waf_profile() {
	((WAF_CPUPROFILE)) || return 0
	if [[ ! -s $OUT/waf/rampart.cpu.pprof ]]; then
		log "waf: no CPU profile was written"
		return 0
	fi
	"$GO" tool pprof -top -nodecount=30 "$OUT/rampart" "$OUT/waf/rampart.cpu.pprof" >"$LOGS/waf-pprof-top.txt" 2>&1 ||
		log "waf: go tool pprof failed; see $LOGS/waf-pprof-top.txt"
	log "waf: Rampart's CPU profile: $OUT/waf/rampart.cpu.pprof, top entries in $LOGS/waf-pprof-top.txt"
}

# waf_scenario: the whole scenario (run.sh calls it after the others).
waf_scenario() {
	: >"$OUT/waf.tsv"
	if [[ ! -x $OUT/rampart ]]; then
		log "SKIPPING waf: rampart was not built"
		return 0
	fi
	if ! waf_install; then
		log "SKIPPING waf: no nginx ModSecurity module or CRS (apt-get install failed; see $LOGS/apt-modsecurity.log)"
		return 0
	fi
	waf_config
	if ! "$OUT/rampart" validate --config "$OUT/rampart-waf.yaml" >"$LOGS/rampart-waf-validate.log" 2>&1; then
		log "SKIPPING waf: Rampart's config does not validate: $(head -c 300 "$LOGS/rampart-waf-validate.log")"
		return 0
	fi
	if ! "$NGINX" -t -p "$OUT/waf/nginx" -e "$LOGS/nginx-modsec-error.log" -c "$OUT/waf/nginx/nginx.conf" \
		>"$LOGS/nginx-modsec-test.log" 2>&1; then
		log "SKIPPING waf: nginx -t failed; see $LOGS/nginx-modsec-test.log"
		return 0
	fi
	local crs_deb modsec_deb crs_go coraza_go gogc=${GOGC:-}
	crs_deb=$(dpkg-query -W -f '${Version}' modsecurity-crs 2>/dev/null || echo '?')
	modsec_deb=$(dpkg-query -W -f '${Version}' libmodsecurity3 2>/dev/null || echo '?')
	crs_go=$(cd "$ROOT" && "$GO" list -m -f '{{.Version}}' github.com/corazawaf/coraza-coreruleset/v4 2>/dev/null || echo '?')
	coraza_go=$(cd "$ROOT" && "$GO" list -m -f '{{.Version}}' github.com/corazawaf/coraza/v3 2>/dev/null || echo '?')
	[[ -n $gogc ]] || gogc="400 (Rampart's default)"
	WAF_VERSIONS="nginx: CRS $crs_deb, libmodsecurity3 $modsec_deb; Rampart: CRS $crs_go, Coraza $coraza_go, GOGC $gogc"
	log "waf: Rampart + CRS vs nginx + ModSecurity + CRS, paranoia level 1, threshold 5, blocking"
	local name v round
	for name in $WAF_PROXIES; do
		if ! waf_start "$name"; then
			log "SKIPPING waf: $name did not start or answered wrongly (see the messages above)"
			waf_stop
			return 0
		fi
	done
	# Whatever ModSecurity logs from here on matched a benign request.
	local mark
	mark=$(wc -l <"$LOGS/nginx-modsec-error.log" 2>/dev/null || echo 0)
	for v in get post; do
		for name in $WAF_PROXIES; do
			waf_wrk "$v" "$name" "$WARMUP" "$LOGS/warmup-waf-$v-$name.txt" || log "warm-up failed for waf/$v/$name"
		done
	done
	for round in $(seq 1 "$ROUNDS"); do
		for v in get post; do
			for name in $WAF_PROXIES; do waf_measure "$v" "$name" "$round"; done
		done
	done
	if tail -n +"$((mark + 1))" "$LOGS/nginx-modsec-error.log" 2>/dev/null | grep -q 'ModSecurity: '; then
		log "waf: warning: ModSecurity logged rule matches during the runs; see $LOGS/nginx-modsec-error.log"
	fi
	waf_settle
	waf_stop
	waf_profile
}

# waf_med VARIANT NAME COLUMN: the median of one waf.tsv column.
waf_med() { awk -F'\t' -v v="$1" -v p="$2" -v c="$3" '$1 == v && $2 == p { print $c }' "$OUT/waf.tsv" | median; }

# waf_report: the scenario's section of results.md, on stdout.
waf_report() {
	[[ -s $OUT/waf.tsv ]] || return 0
	local v name rps p50 p99 cpu rss errs target r_rps n_rps r_p99 n_p99 met
	echo
	echo "## waf: Rampart + CRS vs nginx + ModSecurity v3 + CRS, paranoia level 1, anomaly threshold 5, blocking"
	echo
	echo "get: GET $WAF_GET_PATH with browser headers and a cookie, wrk -t$THREADS -c$CONNS; post: POST of a 16 KiB JSON body of 200 values, wrk -t$THREADS -c$WAF_POST_CONNS. Versions: $WAF_VERSIONS."
	echo
	echo "| request | proxy | req/s | p50 | p99 | CPU us/req | peak RSS MiB | CPU $PROXY_CPU used by others |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for v in get post; do
		for name in $WAF_PROXIES; do
			rps=$(waf_med "$v" "$name" 4)
			[[ $rps == - ]] && continue
			p50=$(waf_med "$v" "$name" 5)
			p99=$(waf_med "$v" "$name" 6)
			cpu=$(waf_med "$v" "$name" 7)
			rss=$(waf_med "$v" "$name" 8)
			printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$name" "$(fmt "$rps" '%.0f' 1)" \
				"$(fmt "$p50" '%.3f ms' 1000)" "$(fmt "$p99" '%.3f ms' 1000)" "$(fmt "$cpu" '%.1f' 1)" "$(fmt "$rss" '%.1f' 1024)" \
				"$(fmt "$(waf_med "$v" "$name" 12)" '%.0f%%' 1)"
		done
	done
	echo
	echo "| request | req/s Rampart/nginx+ModSecurity | target | p99 Rampart/nginx+ModSecurity | CPU/req Rampart/nginx+ModSecurity | verdict |"
	echo "|---|---:|---:|---:|---:|---|"
	for v in get post; do
		target=$WAF_GET_TARGET
		[[ $v == post ]] && target=$WAF_POST_TARGET
		r_rps=$(waf_med "$v" rampart 4)
		n_rps=$(waf_med "$v" nginx-modsec 4)
		r_p99=$(waf_med "$v" rampart 6)
		n_p99=$(waf_med "$v" nginx-modsec 6)
		met=$(awk -v a="$r_rps" -v b="$n_rps" -v t="$target" -v pa="$r_p99" -v pb="$n_p99" 'BEGIN {
			if (a == "-" || b == "-" || b + 0 == 0) { print "no figures"; exit }
			s = (a / b >= t) ? "req/s met" : "req/s NOT met"
			s = s ((pa + 0 < pb + 0) ? ", p99 lower: met" : ", p99 NOT lower")
			print s
		}')
		printf '| %s | %s | >= %sx | %s | %s | %s |\n' "$v" "$(ratio "$r_rps" "$n_rps")" "$target" \
			"$(ratio "$r_p99" "$n_p99")" "$(ratio "$(waf_med "$v" rampart 7)" "$(waf_med "$v" nginx-modsec 7)")" "$met"
	done
	echo
	echo "Cost of Rampart's own rules (rampart with rampart_rules on, the default, against rampart-stock with it off; same run; target at most 1.15x):"
	echo
	echo "| request | CPU/req on/off | req/s off/on | verdict |"
	echo "|---|---:|---:|---|"
	local c_on c_off
	for v in get post; do
		c_on=$(waf_med "$v" rampart 7)
		c_off=$(waf_med "$v" rampart-stock 7)
		met=$(awk -v a="$c_on" -v b="$c_off" 'BEGIN {
			if (a == "-" || b == "-" || b + 0 == 0) { print "no figures"; exit }
			print (a / b <= 1.15) ? "met" : "NOT met"
		}')
		printf '| %s | %s | %s | %s |\n' "$v" "$(ratio "$c_on" "$c_off")" \
			"$(ratio "$(waf_med "$v" rampart-stock 4)" "$(waf_med "$v" rampart 4)")" "$met"
	done
	errs=$(awk -F'\t' '$10 + $11 > 0 { printf "%s/%s round %s: %s socket errors, %s non-2xx/3xx; ", $1, $2, $3, $10, $11 }' "$OUT/waf.tsv")
	[[ -n $errs ]] && {
		echo
		echo "**Errors:** $errs"
	}
	return 0
}
