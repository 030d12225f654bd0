# kernel-repro guest agent, the part every shell of a case loads (the agent's own, and the shell
# started inside each network namespace): records on the result channel (fd 3 = /dev/ttyS1), steps,
# counters. The rest of the agent is in agent.sh, loaded by /init only. Kept small: every shell
# parses it, and parsing costs under TCG.
KR_IP=/usr/lib/kr/ip
KR_TC=/usr/lib/kr/tc

kr_rec() { echo "@@KR $*" >&3; }
kr_now() { # guest uptime in ms (10 ms resolution), builtins only
	kr_t; echo "$KR_T"
}
kr_t() { # the same into $KR_T, without a subshell
	read -r _up _rest < /proc/uptime
	_s=${_up%.*}; _c=${_up#*.}
	KR_T=$((_s * 1000 + 1${_c} * 10 - 1000))
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
kr_path() { # kr_path CMD: CMD's absolute path, a real file in PATH before a busybox applet of that name
	kr_which "$1"; echo "$KR_WHICH"
}
kr_which() { # kr_which CMD: the same into $KR_WHICH, without a subshell (a fork costs ~10 ms under TCG)
	case "$1" in */*) KR_WHICH=$1; return ;; esac
	_IFS=$IFS; IFS=:
	for _d in $PATH; do
		if [ -x "$_d/$1" ] && [ ! -d "$_d/$1" ]; then IFS=$_IFS; KR_WHICH="$_d/$1"; return; fi
	done
	IFS=$_IFS; KR_WHICH=$1
}
kr_run() { # kr_run LABEL CMD...: a setup step; on failure report it and stop the case
	_label=$1; shift
	kr_t; _t0=$KR_T
	if "$@" > /tmp/kr.step 2>&1; then
		kr_t; kr_rec "step $_label rc=0 ok=1 ms=$(( KR_T - _t0 )) at=$KR_T"
	else
		_rc=$?
		kr_rec "step $_label rc=$_rc ok=0 ms=$(( $(kr_now) - _t0 ))"
		kr_section "step-output:$_label" < /tmp/kr.step
		for _f in "$@"; do case "$_f" in /case/*) kr_section "step-input:$_label" < "$_f";; esac; done
		kr_finish "setup step $_label failed"
	fi
}
kr_counter_files() { # kr_counter_files SNMP6: the counter files kr_counters_* read, into $KR_CFILES (snmp6 with SNMP6=1, when there is one)
	KR_CFILES="/proc/net/netstat /proc/net/snmp"; [ "$1" = 1 ] && [ -r /proc/net/snmp6 ] && KR_CFILES="$KR_CFILES /proc/net/snmp6"
	return 0
}
kr_counters_here() { # kr_counters_here TAG NS SNMP6 [NAME...]: this namespace's counters (run inside NS)
	# /proc/net/netstat and /proc/net/snmp in their own header/values format (with SNMP6=1 snmp6 too,
	# turned into it), but only the counters that are not zero plus the NAMEd ones: the serial channel
	# costs ~4 ms per KB under TCG
	_tag=$1 _ns=$2 _v6=$3; shift 3
	kr_rec "begin counters-$_tag:$_ns"
	kr_counter_files "$_v6"
	awk -v keep=" $* " -f /kr/counters.awk $KR_CFILES >&3
	kr_rec "end counters-$_tag:$_ns"
}
kr_finish() { # kr_finish [REASON]: final evidence, then end the VM
	[ -n "$1" ] && kr_rec "abort $1"
	# no dmesg copy: every kernel message already went to the console (ttyS0), which the harness keeps
	kr_t; kr_rec "done uptime_ms=$KR_T"
	exec 3>&- # closing the tty waits until its output has drained
	reboot -f
	sleep 5
}
