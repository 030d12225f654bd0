# kernel-repro guest agent library, sourced by /init. Receives the case from the harness on the
# console's input (fd 4 = /dev/ttyS0), runs the steps the harness rendered into /case/steps.sh and
# reports structured records on the result channel (fd 3 = /dev/ttyS1), separate from the kernel
# console (ttyS0). Record lines start with "@@KR ".
# Only builtins and busybox applets on the hot path; iproute2 is called by full path because the
# busybox applets `ip` and `tc` would shadow it by name.
KR_IP=/usr/lib/kr/ip
KR_TC=/usr/lib/kr/tc

kr_rec() { echo "@@KR $*" >&3; }
kr_now() { # guest uptime in ms (10 ms resolution), builtins only
	read -r _up _rest < /proc/uptime
	_s=${_up%.*}; _c=${_up#*.}
	echo $((_s * 1000 + 1${_c} * 10 - 1000))
}
kr_section() { # kr_section NAME < data
	kr_rec "begin $1"
	awk 1 >&3 # one process, not one shell iteration per line; ends the last line with a newline
	kr_rec "end $1"
}
kr_in() { # kr_in NS CMD...: run CMD in network namespace NS ("host" = the initial one)
	# busybox nsenter only does setns(CLONE_NEWNET): much cheaper under TCG than `ip netns exec`
	# (no mount namespace, no sysfs remount, no dynamic loading); nothing here reads /sys per netns
	_ns=$1; shift
	if [ "$_ns" = host ]; then "$@"; else /bin/busybox nsenter --net=/run/netns/"$_ns" "$@"; fi
}
kr_run() { # kr_run LABEL CMD...: a setup step; on failure report it and stop the case
	_label=$1; shift
	_t0=$(kr_now)
	if "$@" > /tmp/kr.step 2>&1; then
		_t1=$(kr_now); kr_rec "step $_label rc=0 ms=$(( _t1 - _t0 )) at=$_t1"
	else
		_rc=$?
		kr_rec "step $_label rc=$_rc ms=$(( $(kr_now) - _t0 ))"
		kr_section "step-output:$_label" < /tmp/kr.step
		for _f in "$@"; do case "$_f" in /case/*) kr_section "step-input:$_label" < "$_f";; esac; done
		kr_finish "setup step $_label failed"
	fi
}
kr_recv_case() { # read "@@CASE <bytes>" then the case: a script that writes the /case files (fd 4)
	kr_rec "ready uptime_ms=$(kr_now)"
	read -r _tag _n <&4 || return 1
	_t0=$(kr_now)
	[ "$_tag" = "@@CASE" ] || { kr_rec "warn unexpected on the case input: $_tag"; return 1; }
	head -c "$_n" <&4 > /tmp/kr.case.sh || return 1
	_t1=$(kr_now)
	KR_ROOT= KR_CASE_OK=
	. /tmp/kr.case.sh
	[ "$KR_CASE_OK" = 1 ] || { kr_rec "warn the case script did not complete"; return 1; }
	_t2=$(kr_now)
	kr_rec "case bytes=$_n header_at=$_t0 read_ms=$((_t1 - _t0)) unpack_ms=$((_t2 - _t1)) uptime_ms=$_t2"
}
kr_martians() { dmesg | grep -c 'martian source'; }
kr_probe() { # kr_probe NAME NS TIMEOUT_MS STOP_ON_MARTIAN EXPECT CMD...
	_name=$1 _ns=$2 _tmo=$3 _stop=$4 _expect=$5; shift 5
	_m0=0; [ "$_stop" = 1 ] && _m0=$(kr_martians)
	_t0=$(kr_now)
	# started directly (not through a function) so that $! is the probe process itself
	if [ "$_ns" = host ]; then "$@" > "/tmp/kr.probe.$_name" 2>&1 &
	else /bin/busybox nsenter --net=/run/netns/"$_ns" "$@" > "/tmp/kr.probe.$_name" 2>&1 & fi
	_pid=$!
	_early=0 _timedout=0
	while kill -0 "$_pid" 2>/dev/null; do
		_el=$(( $(kr_now) - _t0 ))
		if [ "$_el" -ge "$_tmo" ]; then _timedout=1; kill -9 "$_pid" 2>/dev/null; break; fi
		if [ "$_stop" = 1 ] && [ "$(kr_martians)" -gt "$_m0" ]; then _early=1; kill -9 "$_pid" 2>/dev/null; break; fi
		usleep 5000
	done
	wait "$_pid"; _rc=$?
	_ms=$(( $(kr_now) - _t0 ))
	[ "$_early" = 1 ] || [ "$_timedout" = 1 ] && _rc=none
	_pass=0
	if [ "$_rc" = 0 ]; then
		if [ -z "$_expect" ] || grep -qF -- "$_expect" "/tmp/kr.probe.$_name"; then _pass=1; fi
	fi
	kr_rec "probe $_name ns=$_ns rc=$_rc pass=$_pass ms=$_ms early=$_early timedout=$_timedout at=$(kr_now)"
	kr_section "probe-output:$_name" < "/tmp/kr.probe.$_name"
}
kr_server() { # kr_server NAME NS PORT REPLY: a TCP server answering every connection with REPLY
	if [ "$2" = host ]; then /bin/busybox nc -ll -p "$3" -e /bin/busybox echo "$4" > "/tmp/kr.server.$1" 2>&1 &
	else /bin/busybox nsenter --net=/run/netns/"$2" /bin/busybox nc -ll -p "$3" -e /bin/busybox echo "$4" > "/tmp/kr.server.$1" 2>&1 & fi
	kr_rec "server $1 ns=$2 port=$3 pid=$!"
}
kr_wait_listen() { # kr_wait_listen NS PORT: wait (max 2 s) until a socket listens on PORT
	_hex=$(printf '%04X' "$2"); _i=0
	while [ $_i -lt 100 ]; do
		# a dual-stack listener shows in tcp6 only
		kr_in "$1" cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ":$_hex [0-9A-F:]* 0A " && return 0
		usleep 20000; _i=$((_i + 1))
	done
	kr_rec "warn server on $1:$2 not listening after 2 s"
	kr_in "$1" cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | kr_section "proc-net-tcp:$1"
	for _f in /tmp/kr.server.*; do [ -s "$_f" ] && kr_section "server-output:${_f#/tmp/kr.server.}" < "$_f"; done
}
kr_counters_here() { # kr_counters_here TAG NS [NAME...]: this namespace's counters (run inside NS)
	# /proc/net/netstat and /proc/net/snmp in their own header/values format, but only the counters
	# that are not zero plus the NAMEd ones: the serial channel costs ~4 ms per KB under TCG
	_tag=$1 _ns=$2; shift 2
	kr_rec "begin counters-$_tag:$_ns"
	awk -v keep=" $* " '{
		if (!($1 in hdr)) { hdr[$1] = $0; next }
		n = split(hdr[$1], h); s = substr($1, 1, length($1) - 1); hl = $1; vl = $1
		for (i = 2; i <= NF && i <= n; i++)
			if ($i != 0 || index(keep, " " h[i] " ") || index(keep, " " s "." h[i] " ")) { hl = hl " " h[i]; vl = vl " " $i }
		delete hdr[$1]
		if (hl != $1) print hl "\n" vl
	}' /proc/net/netstat /proc/net/snmp >&3
	kr_rec "end counters-$_tag:$_ns"
}
kr_tcstats_here() { # kr_tcstats_here NS BATCH: which tc filters matched (run inside NS), one tc process
	{ echo "== tc -s -batch, in order:"; while IFS= read -r _l; do echo "== $_l"; done < "$2"
	  "$KR_TC" -s -batch "$2" 2>&1; } > /tmp/kr.tcs
	kr_section "tc-stats:$1" < /tmp/kr.tcs
}
KR_TRACEFS=/sys/kernel/tracing
kr_trace_on() { # kr_trace_on GROUP...
	for _g in "$@"; do
		if [ -w "$KR_TRACEFS/events/$_g/enable" ]; then echo 1 > "$KR_TRACEFS/events/$_g/enable"
		else kr_rec "warn tracepoint group $_g not available"; fi
	done
	# no clearing of the buffer: it is empty until now (nothing is enabled at boot), and clearing it
	# waits for an RCU grace period
}
kr_trace_dump() {
	[ -r "$KR_TRACEFS/trace" ] || return 0
	echo 0 > "$KR_TRACEFS/tracing_on"
	grep -v '^#' "$KR_TRACEFS/trace" > /tmp/kr.trace
	kr_section trace < /tmp/kr.trace
}
kr_finish() { # kr_finish [REASON]: final evidence, then end the VM
	[ -n "$1" ] && kr_rec "abort $1"
	# no dmesg copy: every kernel message already went to the console (ttyS0), which the harness keeps
	kr_rec "done uptime_ms=$(kr_now)"
	exec 3>&- # closing the tty waits until its output has drained
	reboot -f
	sleep 5
}
