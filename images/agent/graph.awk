# The function graph (ftrace's function_graph tracer, options funcgraph-proc on, funcgraph-duration
# and funcgraph-overhead off) compacted for the result channel, one short line per call or event
# (grammar: harness/observe/path.ts): "<cpu>) <task-pid> | <2 x depth spaces><fn>() {" becomes
# "<depth> <fn>", "...<fn>();" "<depth> <fn>;", "/* <event> */" "<depth> # <event>"; closing braces
# are dropped except at depth 0; "@ <cpu> <task-pid>" when the context changes; at most `max` lines.
/^#/ { next }
/LOST [0-9]+ EVENTS/ { print "! " $0; next }
{
	p = index($0, " | "); if (!p) next
	n = split(substr($0, 1, p - 1), h, " "); c = h[1]; sub(/\)$/, "", c)
	b = substr($0, p + 3); match(b, /^ */); d = int(RLENGTH / 2); t = substr(b, RLENGTH + 1)
	if (t ~ /^}/) { if (d > 0) next; t = "}" }
	else if (t ~ /^\/\* /) { t = "# " substr(t, 4); sub(/ \*\/$/, "", t) }
	else if (!sub(/\(\) \{$/, "", t) && sub(/\(\);$/, "", t)) t = t ";"
	if (++out > max) { cut++; next }
	if (c " " h[n] != ctx) { ctx = c " " h[n]; print "@ " ctx }
	print d " " t
}
END { if (cut) print "! truncated " cut }
