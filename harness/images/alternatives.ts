// Guest packages are unpacked, never installed: their maintainer scripts do not run. The one thing
// those scripts do that tools rely on is `update-alternatives --install`: /usr/sbin/iptables is a
// link to iptables-nft only because iptables' postinst says so. This module reads those calls from
// a package's postinst (pure) and chooses what dpkg's automatic mode would: per name, the highest
// priority, with its slaves. Lines that depend on the script's variables are passed over.

export interface AlternativeLink {
  /** the generic name's link, e.g. /usr/sbin/iptables */
  link: string;
  /** the alternative's name, e.g. iptables */
  name: string;
  /** what the link points to, e.g. /usr/sbin/iptables-nft */
  path: string;
}

export interface Alternative extends AlternativeLink {
  priority: number;
  slaves: AlternativeLink[];
}

/** an absolute path of plain names, without `.` or `..` components */
const ABS = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9_.+-]+)+$/;
const NAME = /^[A-Za-z0-9_.+-]+$/;

/** Every `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...` of a maintainer script. */
export function parseAlternatives(script: string): Alternative[] {
  // join continued lines, then look at each command
  const joined = script.slice(0, 256 * 1024).replace(/\\\r?\n/g, ' ');
  const out: Alternative[] = [];
  for (const line of joined.split(/\r?\n|;|&&|\|\|/)) {
    const words = line.trim().split(/\s+/);
    const at = words.indexOf('update-alternatives');
    if (at < 0) continue;
    const args = words.slice(at + 1);
    const i = args.indexOf('--install');
    if (i < 0) continue;
    const [link, name, target, prio] = args.slice(i + 1, i + 5);
    if (!link || !name || !target || !prio || !ABS.test(link) || !NAME.test(name) || !ABS.test(target) || !/^\d{1,9}$/.test(prio)) continue;
    const slaves: AlternativeLink[] = [];
    for (let j = i + 5; j < args.length; j++) {
      if (args[j] !== '--slave') continue;
      const [sl, sn, sp] = args.slice(j + 1, j + 4);
      if (sl && sn && sp && ABS.test(sl) && NAME.test(sn) && ABS.test(sp)) slaves.push({ link: sl, name: sn, path: sp });
      j += 3;
    }
    out.push({ link, name, path: target, priority: Number(prio), slaves });
  }
  return out;
}

/**
 * What automatic mode chooses: per name, the alternative of the highest priority (the first one
 * listed on a tie) whose target `exists`; its link and its slaves' links, as link -> target.
 */
export function chooseAlternatives(all: readonly Alternative[], exists: (p: string) => boolean): Map<string, string> {
  const best = new Map<string, Alternative>();
  for (const a of all) {
    if (!exists(a.path)) continue;
    const cur = best.get(a.name);
    if (!cur || a.priority > cur.priority) best.set(a.name, a);
  }
  const links = new Map<string, string>();
  for (const a of best.values()) {
    links.set(a.link, a.path);
    for (const s of a.slaves) if (exists(s.path)) links.set(s.link, s.path);
  }
  return links;
}
