// Matrix files: kernels x cases x sysctl variants, with the verdict expected per cell where known.
import { z } from 'zod';

const verdict = z.enum(['reproduced', 'not-reproduced', 'error', 'timeout', 'panic']);
const SYSCTL_RE = /^(?:(\*|[A-Za-z][A-Za-z0-9_-]{0,31}):)?(net\.(?:ipv4|ipv6|core)\.[A-Za-z0-9_.-]+)=(-?\d{1,10}(?: -?\d{1,10}){0,3})$/;

export const matrixSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a name: letters, digits, _ . or -'),
    description: z.string().default(''),
    kernels: z.array(z.string().min(1)).min(1),
    cases: z.array(z.string().min(1)).min(1),
    variants: z
      .array(
        z.strictObject({
          name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,63}$/, 'must be a variant name: letters, digits, _ . = + -'),
          /** "[ns:]net.key=value"; ns "*" = every namespace of the case, default "host" */
          sysctls: z.array(z.string().regex(SYSCTL_RE, 'must be [ns:]net.<key>=<integer> (ns "*" = every namespace)')).default([]),
          /** restrict the variant to these cases (default: all) */
          cases: z.array(z.string()).optional(),
          /** restrict the variant to these kernels (default: all): a bug library pairs each bug's case with its own kernels */
          kernels: z.array(z.string()).optional(),
          /** one verdict for every kernel, or kernel -> verdict */
          expect: z.union([verdict, z.record(z.string(), verdict)]).optional(),
        }),
      )
      .default([{ name: 'as-is', sysctls: [] }]),
  })
  .superRefine((m, ctx) => {
    const names = m.variants.map((v) => v.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['variants', i, 'name'], message: `variant name "${n}" is used twice` });
    });
    // a definition given by path may be named by its definition's name in variants (checked once the
    // definitions are loaded: byDefinitionName); a built-in name must be in the lists
    const isPath = (r: string): boolean => r.includes('/') || /\.(ya?ml|json)$/.test(r);
    const kernelPaths = m.kernels.some(isPath);
    const casePaths = m.cases.some(isPath);
    m.variants.forEach((v, i) => {
      for (const c of v.cases ?? [])
        if (!m.cases.includes(c) && !casePaths) ctx.addIssue({ code: 'custom', path: ['variants', i, 'cases'], message: `case "${c}" is not in the matrix's cases` });
      for (const k of v.kernels ?? [])
        if (!m.kernels.includes(k) && !kernelPaths) ctx.addIssue({ code: 'custom', path: ['variants', i, 'kernels'], message: `kernel "${k}" is not in the matrix's kernels` });
      if (v.expect && typeof v.expect === 'object')
        for (const k of Object.keys(v.expect))
          if (!m.kernels.includes(k) && !kernelPaths) ctx.addIssue({ code: 'custom', path: ['variants', i, 'expect', k], message: `kernel "${k}" is not in the matrix's kernels` });
    });
  });

export type MatrixDef = z.output<typeof matrixSchema>;

export function parseSysctlSpec(s: string): { ns: string; key: string; value: string } {
  const m = SYSCTL_RE.exec(s);
  if (!m) throw new Error(`bad sysctl spec ${s}`);
  return { ns: m[1] ?? 'host', key: m[2]!, value: m[3]! };
}
