// Pure kconfig logic: parse .config / fragments, check required options.

export type KconfigValue = string; // 'y' | 'm' | 'n' | "string" | number text

/** Parse a .config or fragment: `CONFIG_X=y` and `# CONFIG_X is not set` (as 'n'). */
export function parseKconfig(text: string): Map<string, KconfigValue> {
  const m = new Map<string, KconfigValue>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let r = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (r?.[1] !== undefined && r[2] !== undefined) {
      m.set(r[1], r[2]);
      continue;
    }
    r = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (r?.[1]) m.set(r[1], 'n');
  }
  return m;
}

export interface FragmentMismatch {
  option: string;
  wanted: string;
  got: string;
  fragment: string;
}

/** Options a fragment asked for that the final .config does not have (unmet dependencies). */
export function fragmentMismatches(finalConfig: Map<string, string>, fragments: Array<{ name: string; text: string }>): FragmentMismatch[] {
  const out: FragmentMismatch[] = [];
  for (const f of fragments)
    for (const [opt, wanted] of parseKconfig(f.text)) {
      const got = finalConfig.get(opt) ?? 'n';
      if (got !== wanted) out.push({ option: opt, wanted, got, fragment: f.name });
    }
  return out;
}

/** Required options (must be y or m) missing from the final .config. */
export function missingRequired(finalConfig: Map<string, string>, required: string[]): string[] {
  return required.filter((o) => {
    const v = finalConfig.get(o);
    return v !== 'y' && v !== 'm';
  });
}

/** Required options not built into the kernel (`m` counts as missing: a kernel the harness builds ships no modules). */
export function notBuiltIn(finalConfig: Map<string, string>, required: string[]): string[] {
  return required.filter((o) => finalConfig.get(o) !== 'y');
}

/**
 * What path tracing needs (--trace-path): function_graph, and kretprobe events for return values.
 * KPROBES depends on MODULES (tinyconfig has it off; nothing is built as a module: the harness
 * builds only bzImage). FUNCTION_TRACER turns ENABLE_DEFAULT_TRACERS off, which is expected.
 */
export const TRACE_KCONFIG = ['CONFIG_MODULES', 'CONFIG_FUNCTION_TRACER', 'CONFIG_FUNCTION_GRAPH_TRACER', 'CONFIG_DYNAMIC_FTRACE', 'CONFIG_KPROBES', 'CONFIG_KPROBE_EVENTS'];
