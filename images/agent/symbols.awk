# kr_symbols: kernel addresses in FIELD=<hex> words of a trace (first file), as the nearest kallsyms
# symbol at or below each (second file, /proc/kallsyms). Output per address found:
# "<event line, from 0> <field> <address> <symbol>+0x<offset>". 16-digit lower-case hex compares as text.
function hex(s,  i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
NR == FNR { for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2 && index(fields, " " kv[1] " ") && kv[2] ~ /^(0x)?[0-9a-f]+$/) {
		a = kv[2]; sub(/^0x/, "", a); while (length(a) < 16) a = "0" a; want[a] = 1; at[++n] = (FNR - 1) " " kv[1] " " a }
	next }
{ for (w in want) if (($1 "") <= (w "") && (!(w in best) || ($1 "") > best[w])) { best[w] = $1 ""; sym[w] = $3 } }
END { for (i = 1; i <= n; i++) { split(at[i], x, " "); w = x[3]; if (w in best) printf "%s %s+0x%x\n", at[i], sym[w], hex(substr(w, 9)) - hex(substr(best[w], 9)) } }
