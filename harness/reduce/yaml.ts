// The reduced case as a file: the original YAML document with the removed elements' nodes deleted
// (and the simplified values set in place), so that the comments of what survives stay where they
// were. Pure: text in, text out.
import YAML, { isMap, isScalar, isSeq, type Document, type YAMLSeq } from 'yaml';
import type { CaseDef } from '../cases/schema.ts';
import { applyElements, closure, type CaseElements } from './elements.ts';

const SECTIONS = ['namespaces', 'links', 'interfaces', 'routes', 'nexthops', 'rules', 'neighbours', 'bridgeVlans', 'sysctls', 'qdiscs', 'filters', 'nftables', 'steps', 'servers', 'captures', 'probes'] as const;

/** no re-wrapping: a flow mapping stays on its line (folded scalars are put back as written, below) */
export const YAML_OUT = { lineWidth: 0 } as const;

/**
 * Stringify, with every top-level folded scalar (`description: >`) as it was written in `text`
 * (the serializer would join its lines into one).
 */
export function stringifyKeepingFolded(doc: Document, text: string): string {
  const originals: Array<{ mark: string; source: string }> = [];
  if (isMap(doc.contents))
    for (const pair of doc.contents.items) {
      const v = pair.value;
      if (isScalar(v) && v.type === 'BLOCK_FOLDED' && v.range) {
        const mark = `kr-reduce-folded-${originals.length}-${Math.random().toString(36).slice(2)}`;
        originals.push({ mark, source: text.slice(v.range[0], v.range[1]).replace(/\s+$/, '') });
        v.value = mark;
        v.type = 'PLAIN';
      }
    }
  let out = doc.toString(YAML_OUT);
  for (const o of originals) out = out.replace(o.mark, () => o.source);
  return out;
}

/**
 * Delete the items at these indexes from a sequence. A comment line above a deleted item heads a
 * group (the items up to the next one with a comment of its own): it moves to the next surviving
 * item of the group, or goes with the group when all of it goes. A comment after an item on its
 * line goes with the item.
 */
export function deleteItems(seq: YAMLSeq, drop: ReadonlySet<number>): void {
  const n = seq.items.length;
  let a = 0;
  while (a < n) {
    if (!drop.has(a)) {
      a++;
      continue;
    }
    let b = a;
    while (b + 1 < n && drop.has(b + 1)) b++;
    const next = b + 1 < n ? (seq.items[b + 1] as { commentBefore?: string | null }) : null;
    // the comment line that heads the next survivor's group: the last one in the deleted run
    let header: string | null = null;
    for (let i = a; i <= b; i++) header = (seq.items[i] as { commentBefore?: string | null }).commentBefore ?? header;
    if (next && !next.commentBefore) {
      // the survivor goes on the group of the last comment line before it
      if (header) {
        if (a === 0) seq.commentBefore = header;
        else next.commentBefore = header;
      }
    } else if (a === 0) delete seq.commentBefore; // the first item's comment line is the sequence's own: its group is gone
    a = b + 1;
  }
  for (const i of [...drop].sort((x, y) => y - x)) if (i < n) seq.items.splice(i, 1);
}

/** The reduced case's YAML from the original's text. `name`: the reduced case's name; `header`: comment lines put on top. */
export function reducedYaml(text: string, c: CaseDef, ce: CaseElements, kept: readonly string[], o: { name?: string; header?: string[] } = {}): string {
  const doc = YAML.parseDocument(text);
  const keep = new Set([...closure(ce, kept), ...ce.required.map((r) => r.id)]);
  const reduced = applyElements(c, ce, kept);
  const seqOf = (d: Document, key: string): YAMLSeq | null => {
    const s = d.get(key, true);
    return isSeq(s) ? s : null;
  };
  // values first (indexes still the original's), then deletions
  c.sysctls.forEach((_, i) => {
    const v = (ce.variants.get(`sysctls[${i}]`) ?? []).find((x) => keep.has(x.id));
    if (v?.sysctlKey) doc.setIn(['sysctls', i, 'key'], v.sysctlKey);
  });
  c.nftables.forEach((n, i) => {
    if (!keep.has(`nftables[${i}]`)) return;
    const now = reduced.nftables.find((x) => x.ns === n.ns);
    const node = doc.getIn(['nftables', i, 'ruleset'], true);
    if (now && now.ruleset !== n.ruleset && isScalar(node)) node.value = now.ruleset;
  });
  const ifaces = seqOf(doc, 'interfaces');
  c.interfaces.forEach((it, i) => {
    const id = `interfaces[${i}]`;
    const node = ifaces?.items[i];
    if (!keep.has(id) || !isMap(node)) return;
    if (it.mac !== undefined && !keep.has(`${id}.mac`)) node.delete('mac');
    if (it.mtu !== undefined && !keep.has(`${id}.mtu`)) node.delete('mtu');
    if (it.master !== undefined && !keep.has(`${id}.master`)) node.delete('master');
    const addrs = node.get('addresses', true);
    if (isSeq(addrs)) {
      deleteItems(addrs, new Set(it.addresses.map((_, j) => j).filter((j) => !keep.has(`${id}.addresses[${j}]`))));
      if (addrs.items.length === 0) node.delete('addresses');
    }
  });
  const controls = doc.getIn(['signature', 'controls'], true);
  if (isSeq(controls)) {
    const names = new Set(reduced.probes.map((p) => p.name));
    deleteItems(controls, new Set(c.signature.controls.map((ref, i) => (names.has(ref.split('/')[0]!) ? -1 : i)).filter((i) => i >= 0)));
    if (controls.items.length === 0) (doc.get('signature', true) as { delete?: (k: string) => void }).delete?.('controls');
  }
  const signatureProbe = c.signature.probe.split('/')[0]!;
  for (const section of SECTIONS) {
    const seq = seqOf(doc, section);
    if (!seq) continue;
    const drop = new Set<number>();
    (c[section] as unknown[]).forEach((item, i) => {
      if (section === 'probes' && (item as { name: string }).name === signatureProbe) return;
      const id = `${section}[${i}]`;
      if (!keep.has(id) && !(ce.variants.get(id) ?? []).some((v) => keep.has(v.id))) drop.add(i);
    });
    deleteItems(seq, drop);
    if (seq.items.length === 0) doc.delete(section);
  }
  if (o.name) doc.set('name', o.name);
  if (o.header?.length) doc.commentBefore = [...o.header.map((l) => ` ${l}`), ...(doc.commentBefore ? [doc.commentBefore] : [])].join('\n');
  return stringifyKeepingFolded(doc, text);
}
