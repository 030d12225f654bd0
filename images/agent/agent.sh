# kernel-repro guest agent, sourced by /init (lib.sh holds what the shells inside namespaces need too).
# Receives the case from the harness on the console's input (fd 4 = /dev/ttyS0), runs the steps the
# harness rendered into /case/steps.sh and reports structured records on the result channel (fd 3 =
# /dev/ttyS1), separate from the kernel console (ttyS0). Record lines start with "@@KR "; their
# grammar is in harness/agent/protocol.ts. Only builtins and busybox applets on the hot path (a
# process, or a $(...) subshell, costs ~10 ms under TCG); iproute2 is called by full path because
# the busybox applets `ip` and `tc` would shadow it by name.
. /kr/lib.sh

kr_bg() { # kr_bg NS OUT CMD...: start CMD (resolved in PATH) in NS in the background, output to OUT; $! is it
	# $KR_CWD, when set (the line before the step or probe): the directory CMD runs in
	_ns=$1 _out=$2 _cwd=$KR_CWD; shift 2; KR_CWD=
	kr_which "$1"; _cmd=$KR_WHICH; shift
	# started directly (not through a function) so that $! is the process itself; with a directory,
	# a subshell that changes into it and execs CMD (the same process)
	if [ -n "$_cwd" ]; then
		if [ "$_ns" = host ]; then ( cd "$_cwd" || exit 127; exec "$_cmd" "$@" ) > "$_out" 2>&1 &
		else ( cd "$_cwd" || exit 127; exec /bin/busybox nsenter --net=/run/netns/"$_ns" "$_cmd" "$@" ) > "$_out" 2>&1 & fi
	elif [ "$_ns" = host ]; then "$_cmd" "$@" > "$_out" 2>&1 &
	else /bin/busybox nsenter --net=/run/netns/"$_ns" "$_cmd" "$@" > "$_out" 2>&1 & fi
}
kr_phase() { # kr_phase setup|steps|probes|after: the case's phase, marked in the kernel log (harness/observe/splat.ts windows splats by it)
	{ echo "<5>kernel-repro: phase $1" > /dev/kmsg; } 2>/dev/null
	return 0
}
kr_trace_mark() { # kr_trace_mark steps|probes: the same mark in the trace, when tracing is armed before the steps (harness/observe/trace.ts)
	{ echo "kernel-repro: phase $1" > "$KR_TRACEFS/trace_marker"; } 2>/dev/null
	return 0
}
kr_has() { # kr_has TOKEN FILE: does FILE hold TOKEN (a plain string)?
	grep -qF -- "$1" "$2"
}
kr_step() { # kr_step LABEL NS TIMEOUT_MS EXPECT_RC CMD...: a command of the case; another exit code stops the case
	# $KR_EXPECT / $KR_ABSENT, when set (the line before): its output must hold / must not hold this token
	_label=$1 _ns=$2 _tmo=$3 _erc=$4; shift 4
	kr_t; _t0=$KR_T
	kr_bg "$_ns" /tmp/kr.step "$@"; _pid=$!
	_timedout=0
	while kill -0 "$_pid" 2>/dev/null; do
		kr_t; [ $(( KR_T - _t0 )) -ge "$_tmo" ] && { _timedout=1; kill -9 "$_pid" 2>/dev/null; break; }
		usleep 10000
	done
	wait "$_pid"; _rc=$?
	_ok=0; [ "$_timedout" = 0 ] && [ "$_rc" = "$_erc" ] && _ok=1
	_tok=
	if [ "$_ok" = 1 ] && [ -n "$KR_EXPECT" ] && ! kr_has "$KR_EXPECT" /tmp/kr.step; then _ok=0; _tok="its output lacks \"$KR_EXPECT\""; fi
	if [ "$_ok" = 1 ] && [ -n "$KR_ABSENT" ] && kr_has "$KR_ABSENT" /tmp/kr.step; then _ok=0; _tok="its output holds \"$KR_ABSENT\", which must be absent"; fi
	KR_EXPECT= KR_ABSENT=
	kr_rec "step $_label rc=$_rc ok=$_ok ms=$(( $(kr_now) - _t0 )) timedout=$_timedout"
	kr_section "step-output:$_label" < /tmp/kr.step
	if [ "$_ok" != 1 ]; then
		[ -n "$_tok" ] && kr_finish "step $_label ended with exit code $_rc, but $_tok"
		_why=; [ "$_timedout" = 1 ] && _why=" (timed out after $_tmo ms)"
		kr_finish "step $_label ended with exit code $_rc$_why, expected $_erc"
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
kr_section_file() { # kr_section_file NAME FILE: a regular file as a section; its first 32 lines by the shell's own read (no process), the rest, if any, by awk
	kr_rec "begin $1"
	{
		_n=0
		while [ $_n -lt 32 ] && IFS= read -r _l; do printf '%s\n' "$_l"; _n=$((_n + 1)); done
		if [ $_n -ge 32 ]; then awk 1; elif [ -n "$_l" ]; then printf '%s\n' "$_l"; fi # (a last line without its newline)
	} < "$2" >&3
	kr_rec "end $1"
}
kr_checkpoint() { # the case is set up: wait for the harness's go, then make this run its own sample
	# The harness may save the guest's state here (a case snapshot) and restore it for every repeat of
	# this kernel, case and sysctls; each restore then receives its own go line on the console input:
	#   @@GO <seed: 64 hex> <host time: epoch s> <jitter: us> independent|replay
	# independent: /kr/reseed sets the wall clock to the host's, reseeds the kernel's CRNG with the
	# seed (RNDADDENTROPY + RNDRESEEDCRNG) and waits the jitter; replay: none of it, the snapshot's
	# own state. The helper is started now and waits on a FIFO, so that it is in the snapshot and a
	# restored repeat starts no process for its go (the first fork after a restore costs ~60 ms of TCG)
	if [ -x /kr/reseed ] && mkfifo /tmp/kr.go /tmp/kr.gone 2>/dev/null; then
		/kr/reseed --fifo /tmp/kr.go /tmp/kr.gone & KR_RESEED=$!
	fi
	# the kernel log's count of signature lines now, as the baseline of the first probe after the
	# go (kr_probe): counted here, before the snapshot, it costs a repeat nothing
	[ -n "$KR_WATCH" ] && kr_watch_count && KR_WATCH_BASE=1 && [ "$KR_GRAPH" = 1 ] && kr_watch_follow
	kr_rec "checkpoint uptime_ms=$(kr_now)"
	read -r _tag _seed _epoch _jit _mode <&4 || kr_finish "no go after the checkpoint"
	[ "$_tag" = "@@GO" ] || kr_finish "unexpected on the case input after the checkpoint: $_tag"
	if [ "$_mode" = independent ]; then
		_rs="clock=nohelper addentropy=nohelper reseed=nohelper"
		if [ -n "$KR_RESEED" ] && kill -0 "$KR_RESEED" 2>/dev/null; then
			printf '%s %s %s\n' "$_seed" "$_epoch" "$_jit" > /tmp/kr.go
			read -r _rs < /tmp/kr.gone
		fi
		case "$_rs" in clock=*" addentropy="*" reseed="*) ;; *) _rs="clock=error addentropy=error reseed=error" ;; esac
	else _rs="clock=skipped addentropy=skipped reseed=skipped"
	fi
	kr_t
	kr_rec "go mode=$_mode seed=$_seed jitter_us=$_jit $_rs uptime_ms=$KR_T"
}
kr_watch_count() { # kernel-log lines matching the signature's signals, into $KR_WATCHED (no subshell)
	dmesg | grep -cE -- "$KR_WATCH" > /tmp/kr.watch; read -r KR_WATCHED < /tmp/kr.watch
}
kr_watch_follow() { # (once) follow the kernel log: the count of signature lines so far, kept in /tmp/kr.watch.n
	# so that a probe on a tracing kernel looks at the log every turn by reading a file (a builtin),
	# not by starting dmesg and grep (two processes a look); elsewhere kr_watch_seen uses those. cat reads /dev/kmsg one record a read (awk's own reads
	# can be too short for a record); the count starts from the log's beginning, as dmesg's does
	[ -n "$KR_FOLLOW" ] && return 0
	[ -r /dev/kmsg ] || return 1
	echo 0 > /tmp/kr.watch.n
	cat /dev/kmsg 2>/dev/null | awk -v re="$KR_WATCH" '$0 ~ re { n++; printf "%d\n", n > "/tmp/kr.watch.n"; close("/tmp/kr.watch.n") }' &
	KR_FOLLOW=$!
}
kr_watch_seen() { # kr_watch_seen M0: has the kernel logged more signature lines than M0?
	if [ -n "$KR_FOLLOW" ]; then
		_wn=0; { read -r _wn < /tmp/kr.watch.n; } 2>/dev/null
		[ "${_wn:-0}" -gt "$1" ] 2>/dev/null
	else kr_watch_count && [ "$KR_WATCHED" -gt "$1" ]
	fi
}
kr_probe() { # kr_probe NAME NS TIMEOUT_MS WATCH EXPECT_RC EXPECT STOP_AT_TOKEN CMD...
	# $KR_ABSENT, when set (the line before): the probe fails when its output holds this token
	_name=$1 _ns=$2 _tmo=$3 _watch=$4 _erc=$5 _expect=$6 _stoptok=$7; shift 7
	_absent=$KR_ABSENT; KR_ABSENT=
	[ -n "$KR_WATCH" ] || _watch=0
	# the count of signature lines before the probe: the checkpoint's for the first probe after it
	# (nothing else ran since), else counted now
	_m0=0
	if [ "$_watch" = 1 ]; then
		[ "$KR_WATCH_BASE" = 1 ] || kr_watch_count
		_m0=$KR_WATCHED
		[ "$KR_GRAPH" = 1 ] && kr_watch_follow # a tracing kernel looks every turn (below)
	fi
	KR_WATCH_BASE=0
	_out="/tmp/kr.probe.$_name"
	kr_t; _t0=$KR_T
	kr_bg "$_ns" "$_out" "$@"; _pid=$!
	_early=0 _timedout=0 _gotok=0
	while kill -0 "$_pid" 2>/dev/null; do
		kr_t; _el=$(( KR_T - _t0 ))
		if [ "$_el" -ge "$_tmo" ]; then _timedout=1; kill -9 "$_pid" 2>/dev/null; break; fi
		# the kernel log from 100 ms on: early enough to spare the probe its timeout, and a probe that
		# ends sooner (the usual case without the bug) spends nothing on it; but every turn on a
		# tracing kernel, where a probe that runs on records more into the path (looking from 100 ms
		# on there, 1 of 20 `repro --trace-path` found no split; every turn, none of 32)
		if [ "$_watch" = 1 ] && { [ "$KR_GRAPH" = 1 ] || [ "$_el" -ge 100 ]; } && kr_watch_seen "$_m0"; then _early=1; kill -9 "$_pid" 2>/dev/null; break; fi
		if [ "$_stoptok" = 1 ] && grep -qF -- "$_expect" "$_out"; then _gotok=1; kill -9 "$_pid" 2>/dev/null; break; fi
		usleep 5000
	done
	wait "$_pid"; _rc=$?
	kr_t; _ms=$(( KR_T - _t0 ))
	[ "$_gotok" = 1 ] && _rc=$_erc # the answer arrived: what the command would have ended with
	[ "$_early" = 1 ] || [ "$_timedout" = 1 ] && _rc=none
	_pass=0
	if [ "$_rc" = "$_erc" ]; then
		if [ -z "$_expect" ] || grep -qF -- "$_expect" "$_out"; then _pass=1; fi
		[ "$_pass" = 1 ] && [ -n "$_absent" ] && kr_has "$_absent" "$_out" && _pass=0
	fi
	kr_rec "probe $_name ns=$_ns rc=$_rc pass=$_pass ms=$_ms early=$_early timedout=$_timedout at=$(kr_now)"
	kr_section_file "probe-output:$_name" "$_out"
}
kr_counters_in() { # kr_counters_in TAG NS SNMP6 [NAME...]: NS's counters, read inside it by one awk (kr_counters_here's format)
	_tag=$1 _ns=$2 _v6=$3; shift 3
	kr_rec "begin counters-$_tag:$_ns"
	_pid=; [ -r "/tmp/kr.cnt.$_ns.pid" ] && read -r _pid < "/tmp/kr.cnt.$_ns.pid"
	if [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null; then
		: > "/tmp/kr.cnt.$_ns" # started at the checkpoint (kr_counters_ready): let it read them now
		wait "$_pid"
	else
		kr_counter_files "$_v6"
		kr_in "$_ns" awk -v keep=" $* " -f /kr/counters.awk $KR_CFILES >&3
	fi
	kr_rec "end counters-$_tag:$_ns"
}
kr_counters_ready() { # kr_counters_ready NS SNMP6 [NAME...]: start NS's counters reader now; it reads them when kr_counters_in says so
	# awk reads its files in order: a FIFO first holds it back (the counters are read after the
	# probes), and its start is in the case snapshot
	_ns=$1 _v6=$2; shift 2
	mkfifo "/tmp/kr.cnt.$_ns" 2>/dev/null || return 0
	kr_counter_files "$_v6"
	kr_in "$_ns" awk -v keep=" $* " -f /kr/counters.awk "/tmp/kr.cnt.$_ns" $KR_CFILES >&3 &
	echo $! > "/tmp/kr.cnt.$_ns.pid"
}
kr_tcstats_in() { # kr_tcstats_in NS BATCH: which tc filters matched in NS, one tc inside it, straight to the result channel
	kr_rec "begin tc-stats:$1"
	{ echo "== tc -s -batch, in order:"; while IFS= read -r _l; do echo "== $_l"; done < "$2"; } >&3
	_pid=; [ -r "/tmp/kr.tcs.$1.pid" ] && read -r _pid < "/tmp/kr.tcs.$1.pid"
	if [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null; then
		# started at the checkpoint (kr_tcstats_ready): hand it the commands, wait for its answer
		while IFS= read -r _l; do printf '%s\n' "$_l"; done < "$2" > "/tmp/kr.tcs.$1" # builtins: no process
		wait "$_pid"
	else
		kr_in "$1" "$KR_TC" -s -batch "$2" >&3 2>&1 # tc ends every line it prints
	fi
	kr_rec "end tc-stats:$1"
}
kr_tcstats_ready() { # kr_tcstats_ready NS: start NS's tc now, waiting for its commands on a FIFO (kr_tcstats_in)
	# tc is linked against eleven libraries: loaded before the checkpoint, a restored repeat does
	# not pay for it again (tc opens its batch file, the FIFO, only once loaded, and waits there)
	mkfifo "/tmp/kr.tcs.$1" 2>/dev/null || return 0
	kr_in "$1" "$KR_TC" -s -batch "/tmp/kr.tcs.$1" >&3 2>&1 &
	echo $! > "/tmp/kr.tcs.$1.pid"
}
kr_server() { # kr_server NAME NS tcp|udp PORT REPLY [BIND|- v6only|any]: a server answering every connection (datagram) with REPLY
	_name=$1 _ns=$2 _proto=$3 _port=$4
	printf '%s\n' "$5" > "/tmp/kr.reply.$_name"
	if [ -n "$6" ]; then
		# bound to an address, or IPv6-only: socat, whose listen options say both
		case "$6" in -) _fam=6 _opt= ;; *:*) _fam=6 _opt=",bind=[$6]" ;; *) _fam=4 _opt=",bind=$6" ;; esac
		[ "$7" = v6only ] && _opt="$_opt,ipv6only=1"
		[ "$_fam" = 6 ] && [ "$7" != v6only ] && _opt="$_opt,ipv6only=0"
		[ -e /proc/net/if_inet6 ] || { _fam=4; _opt=${_opt%,ipv6only=0}; }
		if [ "$_proto" = tcp ]; then _listen="TCP$_fam-LISTEN:$_port,fork,reuseaddr$_opt"; else _listen="UDP$_fam-LISTEN:$_port,fork,reuseaddr$_opt"; fi
		kr_bg "$_ns" "/tmp/kr.server.$_name" socat -T 2 "$_listen" "EXEC:/bin/cat /tmp/kr.reply.$_name"
	elif [ "$_proto" = tcp ]; then
		kr_bg "$_ns" "/tmp/kr.server.$_name" /bin/busybox nc -ll -p "$_port" -e /bin/busybox echo "$5"
	else
		# UDP-LISTEN with fork: a child per peer, on its own socket connected to that peer (same port,
		# reuseaddr), so peers never read each other's datagrams; an idle child ends after 2 s
		_listen="UDP6-LISTEN:$_port,fork,reuseaddr,ipv6only=0"; [ -e /proc/net/if_inet6 ] || _listen="UDP4-LISTEN:$_port,fork,reuseaddr"
		kr_bg "$_ns" "/tmp/kr.server.$_name" socat -T 2 "$_listen" "EXEC:/bin/cat /tmp/kr.reply.$_name"
	fi
	kr_rec "server $_name ns=$_ns proto=$_proto port=$_port pid=$!"
}
kr_wait_listen() { # kr_wait_listen NS tcp|udp PORT: wait (max 2 s) until a socket listens on PORT
	_hex=$(printf '%04X' "$3"); _i=0
	if [ "$2" = tcp ]; then _files="/proc/net/tcp /proc/net/tcp6"; _st=0A; else _files="/proc/net/udp /proc/net/udp6"; _st=07; fi
	while [ $_i -lt 100 ]; do
		# a dual-stack listener shows in tcp6/udp6 only
		kr_in "$1" cat $_files 2>/dev/null | grep -q ":$_hex [0-9A-F:]* $_st " && return 0
		usleep 20000; _i=$((_i + 1))
	done
	kr_rec "warn server on $1:$2/$3 not listening after 2 s"
	kr_in "$1" cat $_files 2>/dev/null | kr_section "proc-net-$2:$1"
	for _f in /tmp/kr.server.*; do [ -s "$_f" ] && kr_section "server-output:${_f#/tmp/kr.server.}" < "$_f"; done
}
kr_capture_start() { # kr_capture_start NAME NS DEV SNAPLEN COUNT: tcpdump on DEV until kr_capture_stop
	# -Z root: there is no tcpdump user to drop to; --immediate-mode and -U: every packet is in the
	# file at once (else packets wait up to a second in the ring buffer and are lost at the stop)
	kr_bg "$2" "/tmp/kr.cap.$1.log" tcpdump -Z root --immediate-mode -i "$3" -U -n -s "$4" -c "$5" -w "/tmp/kr.cap.$1"
	echo "$! $2 $3" > "/tmp/kr.cap.$1.pid"
	_i=0
	while [ $_i -lt 150 ]; do # it listens once it says so (max 3 s)
		grep -q 'listening on' "/tmp/kr.cap.$1.log" && return 0
		kill -0 $! 2>/dev/null || break
		usleep 20000; _i=$((_i + 1))
	done
	kr_rec "warn capture $1 on $2:$3 did not start"
	kr_section "capture-log:$1" < "/tmp/kr.cap.$1.log"
}
kr_capture_stop() { # kr_capture_stop NAME: stop it; send its one-line-per-packet summary and the pcap (base64)
	read -r _pid _ns _dev < "/tmp/kr.cap.$1.pid"
	kill -INT "$_pid" 2>/dev/null; wait "$_pid" 2>/dev/null
	[ -e "/tmp/kr.cap.$1" ] || { kr_rec "warn capture $1 wrote nothing"; return 0; }
	"$(kr_path tcpdump)" -Z root -r "/tmp/kr.cap.$1" -nn -tt > /tmp/kr.capsum 2>/tmp/kr.capsum.err || kr_section "capture-read:$1" < /tmp/kr.capsum.err
	_n=$(grep -c . /tmp/kr.capsum); _b=$(wc -c < "/tmp/kr.cap.$1")
	kr_section "capture-summary:$1" < /tmp/kr.capsum
	base64 < "/tmp/kr.cap.$1" | kr_section "capture-pcap:$1"
	kr_rec "capture $1 ns=$_ns dev=$_dev packets=$_n pcap_bytes=$_b"
}
KR_TRACEFS=/sys/kernel/tracing
kr_trace_on() { # kr_trace_on GROUP|GROUP/EVENT...
	for _g in "$@"; do
		if [ -w "$KR_TRACEFS/events/$_g/enable" ]; then echo 1 > "$KR_TRACEFS/events/$_g/enable"
		else kr_rec "warn tracepoint $_g not available"; fi
	done
	# no clearing of the buffer: it is empty until now (nothing is enabled at boot), and clearing it
	# waits for an RCU grace period
}
kr_trace_dump() {
	[ -r "$KR_TRACEFS/trace" ] || return 0
	echo 0 > "$KR_TRACEFS/tracing_on"
	kr_rec "begin trace"
	awk '!/^#/' "$KR_TRACEFS/trace" >&3 # one process
	kr_rec "end trace"
}
kr_symbols() { # kr_symbols FIELD...: the kernel addresses in FIELD=<hex> of the trace, as kallsyms symbols
	# The trace is read again with raw pointers (it is not consumed, and tracing is off by now): 6.1
	# prints a kfree_skb event's reason empty when pointers are not hashed, so the events themselves
	# come from the first read. Output: "<event line, from 0> <field> <address> <symbol>+0x<offset>",
	# the nearest symbol at or below each address; 16-digit lower-case hex compares as text.
	echo nohash-ptr > "$KR_TRACEFS/trace_options" 2>/dev/null
	grep -v '^#' "$KR_TRACEFS/trace" > /tmp/kr.trace.raw
	echo hash-ptr > "$KR_TRACEFS/trace_options" 2>/dev/null
	awk -v fields=" $* " -f /kr/symbols.awk /tmp/kr.trace.raw /proc/kallsyms > /tmp/kr.syms
	kr_section symbols < /tmp/kr.syms
}
# Path tracing (--trace-path; what it sends is read by harness/observe/path.ts). A tracing kernel
# boots with kr.graph=ENTRY,... kr.graph_notrace=GLOB,... kr.graph_events=GROUP/EVENT,... on its
# command line: init arms the function graph of the network stack beneath those entry points at
# boot, not recording (arming patches every traceable function: ~1 s under TCG, paid once and kept
# in the booted-kernel snapshot). The graph owns the top-level ftrace buffer; a traced case's own
# tracepoints go to an instance of their own (kr_trace_instance). kr_graph_on/kr_graph_off record
# only around the signature probe.
KR_TRACE_TOP=/sys/kernel/tracing
kr_graph_arm() { # from the kernel command line (init, at boot)
	_ent= _not= _ev=
	set -f # globs in the lists are for ftrace, not for the shell
	for _w in $KR_CMDLINE; do
		case "$_w" in kr.graph=*) _ent=${_w#kr.graph=} ;; kr.graph_notrace=*) _not=${_w#kr.graph_notrace=} ;; kr.graph_events=*) _ev=${_w#kr.graph_events=} ;; esac
	done
	_t=$KR_TRACE_TOP
	if ! grep -qw function_graph "$_t/available_tracers" 2>/dev/null; then set +f; kr_rec "warn path: this kernel has no function_graph tracer"; return 1; fi
	echo 0 > "$_t/tracing_on"
	_IFS=$IFS; IFS=,
	for _f in $_ent; do echo "$_f" >> "$_t/set_graph_function" 2>/dev/null || kr_rec "warn path: cannot trace beneath $_f (not a traceable function here)"; done
	for _f in $_not; do echo "$_f" >> "$_t/set_graph_notrace" 2>/dev/null; done # a glob matching nothing here is no loss
	for _e in $_ev; do [ -w "$_t/events/$_e/enable" ] && echo 1 > "$_t/events/$_e/enable"; done
	IFS=$_IFS; set +f
	echo function_graph > "$_t/current_tracer" || { kr_rec "warn path: function_graph did not start"; return 1; }
	# who ran each line (task-pid), no durations (smaller, and time is not compared), no hard interrupts
	for _o in funcgraph-proc=1 funcgraph-duration=0 funcgraph-overhead=0 funcgraph-irqs=0; do echo "${_o#*=}" > "$_t/options/${_o%=*}" 2>/dev/null; done
	KR_GRAPH=1
}
kr_trace_instance() { # kr_trace_instance: the case's tracepoints into their own ftrace instance (the graph has the top level)
	mkdir -p "$KR_TRACE_TOP/instances/kr" 2>/dev/null && [ -w "$KR_TRACE_TOP/instances/kr/trace" ] && KR_TRACEFS=$KR_TRACE_TOP/instances/kr && return 0
	kr_rec "warn path: no ftrace instance for the case's tracepoints"
}
kr_graph_on() { # kr_graph_on FUNCTION...: record the armed graph, with the return values of these functions (kretprobes)
	[ "$KR_GRAPH" = 1 ] || { kr_rec "warn path: the function graph is not armed (not a tracing kernel)"; return 0; }
	_i=0
	for _f in "$@"; do
		_i=$((_i + 1))
		echo "r:kr/kr$_i $_f ret=\$retval:x64" >> "$KR_TRACE_TOP/kprobe_events" 2>/dev/null || kr_rec "warn path: no return probe on $_f"
	done
	[ $_i -gt 0 ] && [ -w "$KR_TRACE_TOP/events/kr/enable" ] && echo 1 > "$KR_TRACE_TOP/events/kr/enable"
	echo 1 > "$KR_TRACE_TOP/tracing_on"
}
kr_graph_off() { [ "$KR_GRAPH" = 1 ] && echo 0 > "$KR_TRACE_TOP/tracing_on"; }
kr_graph_dump() { # kr_graph_dump MAXLINES: the graph, one short line per call or event (graph.awk; format: harness/observe/path.ts)
	[ "$KR_GRAPH" = 1 ] || return 0
	awk -v max="$1" -f /kr/graph.awk "$KR_TRACE_TOP/trace" > /tmp/kr.path
	kr_section path < /tmp/kr.path
}
