// Which loadable module provides a kconfig option: read from the kernel's own Makefiles
// (`obj-$(CONFIG_VETH) += veth.o`), and which modules a module needs (modules.dep). Pure.

/** Parse Makefile/Kbuild text into CONFIG symbol -> module names (single-object modules only). */
export function parseObjLines(text: string, into: Map<string, Set<string>> = new Map()): Map<string, Set<string>> {
  const joined = text.replace(/\\\n/g, ' ');
  const re = /^\s*obj-\$\((CONFIG_[A-Z0-9_]+)\)\s*[+:]?=\s*(.+)$/gm;
  let m: RegExpExecArray | null;
  while ((m = re.exec(joined))) {
    for (const tok of m[2]!.split(/\s+/)) {
      const o = /^([A-Za-z0-9_-]+)\.o$/.exec(tok);
      if (!o) continue;
      const set = into.get(m[1]!) ?? new Set<string>();
      set.add(o[1]!.replace(/-/g, '_'));
      into.set(m[1]!, set);
    }
  }
  return into;
}

/** modules.dep: "kernel/net/sched/act_mirred.ko: kernel/foo.ko" -> name -> {path, deps(names)} */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  const name = (p: string): string => p.split('/').pop()!.replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_');
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const p = line.slice(0, i).trim();
    const deps = line.slice(i + 1).trim().split(/\s+/).filter(Boolean);
    out.set(name(p), { path: p, deps: deps.map(name) });
  }
  return out;
}

/** Module load order (dependencies first) for `wanted`, with the names not found. */
export function loadOrder(dep: Map<string, { path: string; deps: string[] }>, wanted: string[]): { order: string[]; missing: string[] } {
  const order: string[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string): void => {
    if (seen.has(n)) return;
    seen.add(n);
    const e = dep.get(n);
    if (!e) {
      missing.push(n);
      return;
    }
    for (const d of e.deps) visit(d);
    order.push(n);
  };
  for (const w of wanted) visit(w);
  return { order, missing };
}
