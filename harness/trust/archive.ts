// Trust boundary: the members of archives that come from outside (downloaded kernel source
// tarballs, remote cache entries) and the trees they unpack to.
//
// Rules, all enforced here:
//  - a member's name is relative, without NUL and without any `..` component;
//  - a member is a plain file or a directory. Symbolic and hard links only where the caller allows
//    in-tree links (a kernel source tree has some), and then only when the link resolves inside the
//    tree (checked on the header, and again on the unpacked tree, through chains of links);
//    devices, FIFOs and any other type are always refused;
//  - modes are normalised, never taken as they are: directories 0755, files 0755 when the member
//    had any x bit, else 0644. No setuid, setgid or sticky bit survives, on the header (before the
//    file is written) or on the tree (normaliseTree, after an unpack by any tool).
import fs from 'node:fs';
import path from 'node:path';

export type LinkPolicy = 'none' | 'in-tree';

export interface MemberRules {
  /** symbolic/hard links: refused (default), or allowed when they resolve inside the tree */
  links?: LinkPolicy;
  /** leading path components the extraction strips (the links' targets are resolved after it) */
  strip?: number;
}

/** What a member header says (node-tar's ReadEntry has these fields). */
export interface MemberHeader {
  path: string;
  type: string;
  linkpath?: string | undefined;
  mode?: number | undefined;
}

const PLAIN = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

const isAbs = (s: string): boolean => s.startsWith('/') || s.startsWith('\\') || /^[a-zA-Z]:/.test(s);

/** Why a member may not be unpacked, or null. */
export function memberProblem(h: MemberHeader, rules: MemberRules = {}): string | null {
  const p = h.path;
  if (p.includes('\0')) return `path ${p.replace(/\0/g, '\\0')} contains a NUL byte`;
  if (isAbs(p)) return `absolute path ${p}`;
  if (p.split(/[\\/]/).includes('..')) return `path ${p} climbs out with '..'`;
  if (PLAIN.has(h.type)) return null;
  const isLink = h.type === 'SymbolicLink' || h.type === 'Link';
  if (!isLink || rules.links !== 'in-tree') return `${p} is a ${h.type}, not a plain file`;
  const target = h.linkpath;
  const what = h.type === 'SymbolicLink' ? 'symlink' : 'hardlink';
  if (!target) return `${what} without a target`;
  if (target.includes('\0')) return `${what} target contains a NUL byte`;
  if (isAbs(target)) return `${what} to the absolute path ${target}`;
  if (h.type === 'Link') return target.split('/').includes('..') ? `hardlink target ${target} climbs out with '..'` : null;
  const rel = p
    .split('/')
    .slice(rules.strip ?? 0)
    .filter((s) => s !== '' && s !== '.')
    .join('/');
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel || '.'), target));
  if (resolved === '..' || resolved.startsWith('../')) return `symlink target ${target} resolves outside the tree`;
  return null;
}

/** The mode a member gets: directories 0755; files 0755 when any x bit was set, else 0644. */
export function normalMode(mode: number | undefined, isDir: boolean): number {
  if (isDir) return 0o755;
  return (mode ?? 0) & 0o111 ? 0o755 : 0o644;
}

/**
 * A node-tar `filter`: refuses what memberProblem refuses (reporting it through `onProblem`) and
 * rewrites the mode of what it lets through, before the file is written.
 */
export function tarMemberFilter(rules: MemberRules, onProblem: (member: string, why: string) => void): (p: string, entry: unknown) => boolean {
  return (p, entry) => {
    const e = (entry ?? {}) as { type?: unknown; linkpath?: unknown; mode?: unknown };
    const type = typeof e.type === 'string' ? e.type : 'File';
    const why = memberProblem({ path: p, type, linkpath: typeof e.linkpath === 'string' ? e.linkpath : undefined }, rules);
    if (why) {
      onProblem(p, why);
      return false;
    }
    if (typeof e.mode === 'number' && type !== 'SymbolicLink') (entry as { mode: number }).mode = normalMode(e.mode, type === 'Directory');
    return true;
  };
}

/** Follow the symlink at `rel` (relative to `root`) component by component, through any further
 * symlinks in the tree; a description when the resolution leaves `root`, else null. */
function symlinkEscape(root: string, rel: string): string | null {
  const stack = path.posix.dirname(rel).split('/').filter((s) => s !== '' && s !== '.');
  let target = fs.readlinkSync(path.join(root, rel));
  if (path.isAbsolute(target)) return `symlink to the absolute path ${target}`;
  let queue = target.split('/');
  let hops = 0;
  while (queue.length > 0) {
    const c = queue.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return `symlink target resolves outside the tree (via ${target})`;
      stack.pop();
      continue;
    }
    stack.push(c);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(root, ...stack));
    } catch {
      continue; // does not exist: the rest resolves lexically
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) return null; // a loop: resolves nowhere (ELOOP), harmless
      target = fs.readlinkSync(path.join(root, ...stack));
      if (path.isAbsolute(target)) return `symlink chain leads to the absolute path ${target}`;
      stack.pop();
      queue = [...target.split('/'), ...queue];
    }
  }
  return null;
}

/**
 * Walk an unpacked tree: every directory becomes 0755 and every file 0644/0755 (no set-id or sticky
 * bit); what is neither (a device, a FIFO, a socket; a symlink unless in-tree links are allowed and
 * it stays inside) is reported. Returns the problems ("rel: why"), empty when the tree is clean.
 */
export function normaliseTree(root: string, rules: MemberRules = {}): string[] {
  const bad: string[] = [];
  const walk = (relDir: string): void => {
    for (const ent of fs.readdirSync(relDir ? path.join(root, relDir) : root, { withFileTypes: true })) {
      const rel = relDir ? `${relDir}/${ent.name}` : ent.name;
      const abs = path.join(root, rel);
      const st = fs.lstatSync(abs);
      if (st.isDirectory()) {
        if ((st.mode & 0o7777) !== 0o755) fs.chmodSync(abs, 0o755);
        walk(rel);
      } else if (st.isFile()) {
        const mode = normalMode(st.mode, false);
        if ((st.mode & 0o7777) !== mode) fs.chmodSync(abs, mode);
      } else if (st.isSymbolicLink() && rules.links === 'in-tree') {
        const why = symlinkEscape(root, rel);
        if (why) bad.push(`${rel}: ${why}`);
      } else bad.push(`${rel}: is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a plain file or directory'}`);
    }
  };
  if ((fs.lstatSync(root).mode & 0o7777) !== 0o755) fs.chmodSync(root, 0o755);
  walk('');
  return bad;
}

/** The symlinks of an unpacked tree that lead out of it (through chains of links), as "rel: why". */
export function escapingSymlinks(root: string): string[] {
  const bad: string[] = [];
  const walk = (relDir: string): void => {
    for (const ent of fs.readdirSync(relDir ? path.join(root, relDir) : root, { withFileTypes: true })) {
      const rel = relDir ? `${relDir}/${ent.name}` : ent.name;
      if (ent.isDirectory()) walk(rel);
      else if (ent.isSymbolicLink()) {
        const why = symlinkEscape(root, rel);
        if (why) bad.push(`${rel}: ${why}`);
      }
    }
  };
  walk('');
  return bad;
}
