# kr_counters_here: /proc/net/netstat and /proc/net/snmp in their own header/values format, and
# /proc/net/snmp6 ("Ip6InReceives 3" lines) turned into it ("Ip6: InReceives" / "Ip6: 3"); only the
# counters that are not zero, plus those named in keep (" A B Section.C ").
# A file named like the go FIFO of a pre-started reader (kr_counters_ready: /tmp/kr.cnt.<ns>) only
# holds it back until the harness's repeat wants the counters: its lines are not counters.
FILENAME ~ /\/kr\.cnt\./ { next }
function kept(sec, name, v) { return v != 0 || index(keep, " " name " ") || index(keep, " " sec "." name " ") || index(keep, " " sec name " ") }
FILENAME ~ /snmp6$/ {
	if (!match($1, /^(Ip6|Icmp6|Udp6|UdpLite6)/)) next
	sec = substr($1, 1, RLENGTH); name = substr($1, RLENGTH + 1)
	if (kept(sec, name, $2)) { h6[sec] = h6[sec] " " name; v6[sec] = v6[sec] " " $2; if (!(sec in seen)) { seen[sec] = 1; order[++n6] = sec } }
	next
}
{
	if (!($1 in hdr)) { hdr[$1] = $0; next }
	n = split(hdr[$1], h); s = substr($1, 1, length($1) - 1); hl = $1; vl = $1
	for (i = 2; i <= NF && i <= n; i++)
		if (kept(s, h[i], $i)) { hl = hl " " h[i]; vl = vl " " $i }
	delete hdr[$1]
	if (hl != $1) print hl "\n" vl
}
END { for (i = 1; i <= n6; i++) { s = order[i]; print s ":" h6[s] "\n" s ":" v6[s] } }
