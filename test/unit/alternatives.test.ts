// Guest packages behave as installed: the links their maintainer scripts' update-alternatives
// calls make (iptables -> iptables-nft), read from the postinst instead of running it.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { chooseAlternatives, parseAlternatives } from '../../harness/images/alternatives.ts';
import { linkAlternatives } from '../../harness/images/packages.ts';
import { testTempDir } from '../tmp.ts';

// Debian 12's iptables 1.8.9-2 postinst (dpkg-deb -I iptables_1.8.9-2_amd64.deb postinst), abridged
const IPTABLES_POSTINST = `#!/bin/sh

set -e

if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then
	update-alternatives \\
	  --install /usr/sbin/iptables iptables /usr/sbin/iptables-legacy 10 \\
	  --slave /usr/sbin/iptables-restore iptables-restore /usr/sbin/iptables-legacy-restore \\
	  --slave /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-legacy-save
        update-alternatives \\
          --install /usr/sbin/iptables iptables /usr/sbin/iptables-nft 20 \\
          --slave /usr/sbin/iptables-restore iptables-restore /usr/sbin/iptables-nft-restore \\
          --slave /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-nft-save
        update-alternatives \\
          --install /usr/sbin/ebtables ebtables /usr/sbin/ebtables-nft 20 \\
          --slave /usr/sbin/ebtables-restore ebtables-restore /usr/sbin/ebtables-nft-restore
fi
`;

describe('update-alternatives from a postinst', () => {
  it('reads every --install with its slaves, across continued lines', () => {
    const a = parseAlternatives(IPTABLES_POSTINST);
    expect(a.map((x) => `${x.name} ${x.path} ${x.priority} +${x.slaves.length}`)).toEqual([
      'iptables /usr/sbin/iptables-legacy 10 +2',
      'iptables /usr/sbin/iptables-nft 20 +2',
      'ebtables /usr/sbin/ebtables-nft 20 +1',
    ]);
  });

  it('chooses as automatic mode does: the highest priority whose target exists, with its slaves', () => {
    const all = parseAlternatives(IPTABLES_POSTINST);
    const links = chooseAlternatives(all, () => true);
    expect(links.get('/usr/sbin/iptables')).toBe('/usr/sbin/iptables-nft');
    expect(links.get('/usr/sbin/iptables-save')).toBe('/usr/sbin/iptables-nft-save');
    // without the nft programs, the legacy ones
    const legacy = chooseAlternatives(all, (p) => !p.includes('-nft'));
    expect(legacy.get('/usr/sbin/iptables')).toBe('/usr/sbin/iptables-legacy');
    expect(legacy.has('/usr/sbin/ebtables')).toBe(false);
  });

  it('passes over what it cannot read as plain paths: variables, relative or .. paths, a missing priority', () => {
    expect(parseAlternatives('update-alternatives --install $LINK x /a 10\nupdate-alternatives --install /a/../../etc/x x /b 10\nupdate-alternatives --install /a x b 10\nupdate-alternatives --install /a x /b\n')).toEqual([]);
  });

  it('makes the links under the layer root only, never over a file the package ships', () => {
    const root = testTempDir('kr-alt-');
    fs.mkdirSync(path.join(root, 'usr/sbin'), { recursive: true });
    for (const f of ['iptables-nft', 'iptables-nft-save', 'iptables-legacy', 'ebtables-nft']) fs.writeFileSync(path.join(root, 'usr/sbin', f), '');
    fs.writeFileSync(path.join(root, 'usr/sbin/ebtables'), 'shipped');
    const made = linkAlternatives(root, parseAlternatives(IPTABLES_POSTINST), 'case.yaml');
    expect(Object.fromEntries(made)).toEqual({ '/usr/sbin/iptables': '/usr/sbin/iptables-nft', '/usr/sbin/iptables-save': '/usr/sbin/iptables-nft-save' });
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/iptables'))).toBe('/usr/sbin/iptables-nft');
    expect(fs.readFileSync(path.join(root, 'usr/sbin/ebtables'), 'utf8')).toBe('shipped');
    // a directory of the layer that is a link out of it: the link is refused, nothing written outside
    const outside = testTempDir('kr-alt-out-');
    fs.symlinkSync(outside, path.join(root, 'opt'));
    fs.writeFileSync(path.join(root, 'usr/sbin/x-real'), '');
    expect(() => linkAlternatives(root, [{ link: '/opt/x', name: 'x', path: '/usr/sbin/x-real', priority: 1, slaves: [] }], 'case.yaml')).toThrow(/leads out of/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});
