// The rules of an nftables ruleset (the text `nft -f` reads), found well enough to remove them one
// by one: a rule is a statement inside a `chain NAME { ... }` block that is not one of the chain's
// own properties (type/hook/priority, policy, comment, devices), or a top-level `add rule` /
// `insert rule` command. Braces inside a rule (anonymous sets, verdict maps) stay part of the rule.
// Pure: text in, spans out.

export interface NftRule {
  /** offset of the rule's first character */
  start: number;
  /** offset just after the rule (after its `;` when it ends with one) */
  end: number;
  /** the rule's text, whitespace collapsed (for reports) */
  text: string;
}

const BLOCK_HEADS = new Set(['table', 'chain', 'set', 'map', 'flowtable', 'ct', 'counter', 'quota', 'limit', 'secmark', 'synproxy']);
const CHAIN_PROPERTIES = new Set(['type', 'policy', 'comment', 'devices', 'device']);

interface Frame {
  /** the first word of the header that opened this block ('' at the top level) */
  head: string;
}

/** The rules of a ruleset, in text order. */
export function nftRules(text: string): NftRule[] {
  const rules: NftRule[] = [];
  const stack: Frame[] = [{ head: '' }];
  let i = 0;
  // the statement being read
  let stmtStart = -1;
  let nest = 0; // braces opened inside the statement (anonymous sets, maps)
  /** the statement ends at `at` (a ';', newline, comment, brace or the end of the text) */
  const finish = (at: number): void => {
    if (stmtStart < 0) return;
    let end = at;
    while (end > stmtStart && /\s/.test(text[end - 1]!)) end--;
    const raw = text.slice(stmtStart, end);
    const words = raw.trim().split(/\s+/);
    const frame = stack[stack.length - 1]!;
    const isRule =
      frame.head === 'chain' ? !CHAIN_PROPERTIES.has(words[0] ?? '') : frame.head === '' && /^(?:add|insert)$/.test(words[0] ?? '') && words[1] === 'rule';
    if (isRule && raw.trim()) {
      // the span ends after the terminating ';' when there is one
      const stop = text[at] === ';' ? at + 1 : end;
      rules.push({ start: stmtStart, end: stop, text: raw.replace(/\s+/g, ' ').trim() });
    }
    stmtStart = -1;
    nest = 0;
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '#') {
      // a comment runs to the end of the line; it ends a statement like a newline does
      const nl = text.indexOf('\n', i);
      const end = nl < 0 ? text.length : nl;
      if (nest === 0) finish(i);
      i = end;
      continue;
    }
    if (ch === '"') {
      if (stmtStart < 0) stmtStart = i;
      const close = text.indexOf('"', i + 1);
      i = close < 0 ? text.length : close + 1;
      continue;
    }
    if (ch === '{') {
      const head = stmtStart >= 0 ? (text.slice(stmtStart, i).trim().split(/\s+/)[0] ?? '') : '';
      const frame = stack[stack.length - 1]!;
      // a block opens after a header (table ..., chain ..., set ...) outside a rule; inside a rule a brace is an anonymous set or map
      const inRule = frame.head === 'chain' && !CHAIN_PROPERTIES.has(head) && !BLOCK_HEADS.has(head);
      if (nest > 0 || inRule || head === 'devices' || stmtStart < 0 && frame.head === 'chain') {
        if (stmtStart < 0) stmtStart = i;
        nest++;
        i++;
        continue;
      }
      stack.push({ head: head === 'add' || head === 'create' ? (text.slice(stmtStart, i).trim().split(/\s+/)[1] ?? '') : head });
      stmtStart = -1;
      nest = 0;
      i++;
      continue;
    }
    if (ch === '}') {
      if (nest > 0) {
        nest--;
        i++;
        continue;
      }
      finish(i);
      if (stack.length > 1) stack.pop();
      i++;
      continue;
    }
    if ((ch === ';' || ch === '\n') && nest === 0) {
      finish(i);
      i++;
      continue;
    }
    if (stmtStart < 0 && !/\s/.test(ch)) stmtStart = i;
    i++;
  }
  finish(text.length);
  return rules;
}

/**
 * The ruleset without the rules at these indexes (into nftRules(text)). A rule alone on its line
 * goes with its line (and a comment after it on that line); otherwise only its span.
 */
export function withoutRules(text: string, drop: ReadonlySet<number>): string {
  const rules = nftRules(text);
  let out = text;
  for (let k = rules.length - 1; k >= 0; k--) {
    if (!drop.has(k)) continue;
    const r = rules[k]!;
    const lineStart = out.lastIndexOf('\n', r.start - 1) + 1;
    let lineEnd = out.indexOf('\n', r.end);
    if (lineEnd < 0) lineEnd = out.length;
    const before = out.slice(lineStart, r.start);
    const after = out.slice(r.end, lineEnd);
    if (!before.trim() && (!after.trim() || after.trim().startsWith('#'))) out = out.slice(0, lineStart) + out.slice(Math.min(out.length, lineEnd + 1));
    else out = out.slice(0, r.start) + out.slice(r.end).replace(/^[ \t]+/, before.endsWith(' ') ? '' : ' ');
  }
  return out;
}
