# shellcheck shell=bash
# What interop.sh and h2spec.sh share: logging, the processes they start
# and stop on exit, and waiting for a port. Sourced after the script sets
# NAME (its log prefix).

STARTED=() # PIDs we started, stopped on exit

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$NAME" "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}

# cleanup stops what start_bg started (TERM, their children too, then KILL
# after 3 s) and exits with the script's status.
cleanup() {
	local rc=$? pid kids
	trap - EXIT INT TERM
	for pid in "${STARTED[@]}"; do
		kids=$(pgrep -P "$pid" 2>/dev/null || true)
		# shellcheck disable=SC2086
		kill -TERM "$pid" $kids 2>/dev/null || true
	done
	for _ in $(seq 1 30); do
		local alive=0
		for pid in "${STARTED[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: until PORT accepts (5 s), failing early if PID dies.
wait_port() {
	local i
	for i in $(seq 1 50); do
		kill -0 "$2" 2>/dev/null || return 1
		port_open "$1" && return 0
		sleep 0.1
	done
	return 1
}

# start_bg LOG CMD...: start CMD in the background; its PID in BG_PID.
start_bg() {
	local logfile=$1
	shift
	"$@" >"$logfile" 2>&1 &
	BG_PID=$!
	STARTED+=("$BG_PID")
}
