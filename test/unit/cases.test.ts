import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { builtinCases, loadCase } from '../../harness/cases/load.ts';
import { bundleScript, renderCase, shq } from '../../harness/cases/render.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';
import { testTempDir } from '../tmp.ts';

const minimal = `
name: t
description: test
probes:
  - { name: p, ping: 127.0.0.1 }
signature: { probe: p }
`;

function expectBad(yaml: string, field: string, msg?: RegExp): void {
  try {
    parseData(yaml, 'case.yaml', caseSchema);
  } catch (err) {
    expect(err).toBeInstanceOf(HarnessError);
    const e = err as HarnessError;
    expect(e.kind).toBe('bad-input');
    expect(e.file).toBe('case.yaml');
    expect(e.field).toBe(field);
    if (msg) expect(e.message).toMatch(msg);
    return;
  }
  throw new Error(`accepted a bad case (expected an error at ${field})`);
}

describe('built-in cases', () => {
  it('load and validate', () => {
    expect(builtinCases()).toEqual(expect.arrayContaining(['rp-filter-selftest', 'rp-filter-mesos']));
    for (const name of builtinCases()) {
      const c = loadCase(name);
      expect(c.def.name).toBe(name);
      expect(c.def.kconfig).toContain('CONFIG_NET_ACT_MIRRED');
    }
  });

  it('the mesos case carries the write-up address and signature', () => {
    const c = loadCase('rp-filter-mesos').def;
    expect(c.signature).toMatchObject({ probe: 'host-to-container', when: 'fail', signals: ['martian'] });
    expect(c.signals.find((x) => x.name === 'martian')).toEqual({ name: 'martian', kind: 'martian', src: '10.53.180.130', dst: '10.53.180.130', dev: 'lo' });
    expect(c.sysctls).toContainEqual({ ns: 'host', key: 'net.ipv4.conf.all.rp_filter', value: '1' });
  });

  it('an unknown built-in name is a bad-input error listing the built-ins', () => {
    expect(() => loadCase('no-such-case')).toThrow(/built in: .*rp-filter-mesos/);
  });
});

describe('malformed case files are rejected naming the field', () => {
  const cases: Array<[string, string, string, RegExp?]> = [
    ['not YAML', 'name: [unclosed', 'line 1, column 16'],
    ['a list at top level', '- 1\n- 2', '(top level)'],
    ['missing probes', 'name: t\ndescription: d\nsignature: { probe: p }', 'probes'],
    ['missing signature', 'name: t\ndescription: d\nprobes: [{ name: p, ping: 127.0.0.1 }]', 'signature'],
    ['unknown top-level field', minimal + 'extra: 1\n', '(top level)', /extra/],
    ['name with a space', minimal.replace('name: t', 'name: "a b"'), 'name'],
    ['name with shell metacharacters', minimal.replace('name: t', 'name: "x;reboot"'), 'name'],
    ['probe name injection', minimal.replace('{ name: p,', '{ name: "p$(reboot)",').replace('probe: p', 'probe: "p$(reboot)"'), 'probes[0].name'],
    ['bad IPv4', minimal.replace('127.0.0.1', '127.0.0.300'), 'probes[0].ping'],
    ['ping target with a command', minimal.replace('127.0.0.1', '"127.0.0.1; reboot"'), 'probes[0].ping'],
    ['undeclared namespace', minimal.replace('{ name: p,', '{ name: p, ns: nope,'), 'probes[0].ns', /not declared/],
    ['signature names no probe', minimal.replace('probe: p', 'probe: q'), 'signature.probe', /no probe named "q"/],
    ['wrong type for timeout', minimal.replace('{ name: p,', '{ name: p, timeoutMs: "soon",'), 'probes[0]'],
    ['interface name too long', minimal + 'interfaces: [{ dev: abcdefghijklmnopq }]\n', 'interfaces[0].dev'],
    ['dev with a slash', minimal + 'interfaces: [{ dev: "../x" }]\n', 'interfaces[0].dev'],
    ['bad MAC', minimal + 'interfaces: [{ dev: lo, mac: "zz:00:00:00:00:00" }]\n', 'interfaces[0].mac'],
    ['bad CIDR', minimal + 'interfaces: [{ dev: lo, addresses: [10.0.0.1/33] }]\n', 'interfaces[0].addresses[0]'],
    ['sysctl outside net.*', minimal + 'sysctls: [{ key: kernel.panic, value: 1 }]\n', 'sysctls[0].key'],
    ['sysctl value with a command', minimal + 'sysctls: [{ key: net.ipv4.ip_forward, value: "1; reboot" }]\n', 'sysctls[0].value'],
    ['u32 match not in the allowed grammar', minimal + 'filters: [{ dev: lo, parent: ingress, protocol: ip, match: { u32: ["ip dst 1.2.3.4/32 ; reboot"] }, action: pass }]\n', 'filters[0].match.u32[0]'],
    ['mirred direction typo', minimal + 'filters: [{ dev: lo, parent: ingress, protocol: ip, match: basic, action: { mirred: { direction: out, mode: redirect, dev: lo } } }]\n', 'filters[0].action'],
    ['kconfig symbol lower-case', minimal + 'kconfig: [config_veth]\n', 'kconfig[0]'],
    ['link type unknown', minimal + 'links: [{ type: bridge, name: br0 }]\n', 'links[0].type'],
    ['deadline too large', minimal + 'deadlineMs: 99999999\n', 'deadlineMs'],
    ['duplicate keys', minimal + 'name: u\n', 'line 7, column 1'],
    ['tcp expect token with quote', minimal.replace('{ name: p, ping: 127.0.0.1 }', '{ name: p, tcp: { host: 127.0.0.1, port: 1, expect: "a\'b" } }'), 'probes[0].tcp.expect'],
  ];
  for (const [what, yaml, field, msg] of cases) it(what, () => expectBad(yaml, field, msg));
});

describe('renderCase', () => {
  it('renders the selftest topology into batches, sysctls, probes', () => {
    const r = renderCase(loadCase('rp-filter-selftest').def);
    // links first, in the initial namespace's batch (one ip process)
    expect(r.files['/case/addr-host.ip']).toMatch(/^netns add ns2\nlink add dummy0 type dummy\nlink add veth1 type veth peer name veth2 netns ns2\nlink set dev lo address /);
    expect(r.files['/case/setup-host.sh']).toContain('kr_run links+interfaces:host /usr/lib/kr/ip -batch /case/addr-host.ip');
    expect(r.files['/case/tcstats-ns2.tc']).toBe('filter show dev lo parent 1:\nfilter show dev veth2 parent ffff:\n');
    expect(r.files['/case/tc-host.tc']).toContain('filter add dev veth1 parent ffff: protocol ip basic action mirred ingress redirect dev lo');
    expect(r.files['/case/tc-ns2.tc']).toContain('qdisc add dev lo root handle 1: fq_codel');
    expect(r.files['/case/sysctl-host.sh']).toContain('echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter');
    expect(r.files['/case/sysctl-ns2.sh']).toContain('echo 1 > /proc/sys/net/ipv4/conf/all/log_martians');
    expect(r.files['/case/addr-ns2.ip']).toContain('address add 192.0.2.1/24 dev veth2');
    expect(r.files['/case/steps.sh']).toContain("kr_probe ping-local ns2 3000 1 0 '' 0 /bin/busybox ping -c 1 -W 3 192.0.2.1");
    // the martian signal watches the kernel log: an ERE the agent greps dmesg with
    expect(r.files['/case/steps.sh']).toContain("KR_WATCH='(martian source 192\\.0\\.2\\.1 from 192\\.0\\.2\\.1, on dev lo( |$))'");
  });

  it('renders u32 port-range filters as Mesos installs them', () => {
    const r = renderCase(loadCase('rp-filter-mesos').def);
    expect(r.files['/case/tc-host.tc']).toContain(
      'filter add dev mesos1 parent ffff: protocol ip prio 770 u32 match ip dst 10.53.180.130/32 match ip sport 31744 0xfc00 action mirred egress redirect dev lo',
    );
    expect(r.files['/case/sysctl-container.sh']).toContain("echo '31744 32767' > /proc/sys/net/ipv4/ip_local_port_range");
  });

  it('applies sysctl overrides after the case and rejects unknown namespaces', () => {
    const c = loadCase('rp-filter-mesos').def;
    const r = renderCase(c, { sysctlOverrides: [{ ns: 'host', key: 'net.ipv4.conf.all.rp_filter', value: '0' }] });
    const lines = r.files['/case/sysctl-host.sh']!.split('\n');
    expect(lines.indexOf('echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter')).toBeGreaterThan(lines.indexOf('echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter'));
    expect(() => renderCase(c, { sysctlOverrides: [{ ns: 'ghost', key: 'net.ipv4.ip_forward', value: '1' }] })).toThrow(/ghost/);
  });

  it('shq quotes anything so that a real shell gets it back as one word', () => {
    const nasty = ["a'b", '$(touch /tmp/x)', '`id`', 'a b\nc', ';reboot', '"', '\\', ''];
    for (const s of nasty) {
      const out = execFileSync('sh', ['-c', `printf %s ${shq(s)}`]).toString();
      expect(out).toBe(s);
    }
  });

  it('a value that reaches the guest shell cannot inject a command (real sh runs the rendered step)', () => {
    // a hostile token that got past the schema would still be one quoted word
    const dir = testTempDir('kr-inject-');
    const marker = path.join(dir, 'pwned');
    const c = caseSchema.parse(parseData(minimal, 'x.yaml', caseSchema));
    // bypass the schema on purpose: the renderer must still quote
    (c.probes[0] as { name: string }).name = `p;touch ${marker}`;
    const steps = renderCase(c).files['/case/steps.sh']!;
    const line = steps.split('\n').find((l) => l.startsWith('kr_probe'))!;
    execFileSync('sh', ['-c', `kr_probe() { printf '%s\\n' "$1"; }\n${line}`]);
    expect(fs.existsSync(marker)).toBe(false);
    const printed = execFileSync('sh', ['-c', `kr_probe() { printf '%s' "$1"; }\n${line}`]).toString();
    expect(printed).toBe(`p;touch ${marker}`);
  });
});

describe('bundleScript (the case as the guest receives it)', () => {
  it('recreates every file byte for byte when a real sh runs it, text and binary, hostile content inert', () => {
    const root = testTempDir('kr-bundle-');
    const marker = path.join(root, 'pwned');
    const binary = Buffer.from([0, 1, 2, 255, 10, 39, 36, 0x60, 0]);
    const files: Record<string, string | Buffer> = {
      ...renderCase(loadCase('rp-filter-mesos').def).files,
      '/case/evil.txt': `it's $(touch ${marker}) \`touch ${marker}\`\nKR_B64_END\n'\n`,
      '/case/empty': '',
      '/lib/modules/6.1.0-x/kernel/net/veth.ko': binary,
    };
    const script = bundleScript(files);
    const file = path.join(root, 'bundle.sh');
    fs.writeFileSync(file, script);
    // the guest's shell when the host has it (busybox ash), else sh
    const [shell, ...pre] = fs.existsSync('/bin/busybox') ? ['/bin/busybox', 'sh'] : ['sh'];
    execFileSync(shell!, [...pre, '-c', `KR_ROOT=${shq(root)}; KR_CASE_OK=; . ${shq(file)}; [ "$KR_CASE_OK" = 1 ]`]);
    for (const [p, content] of Object.entries(files)) expect(fs.readFileSync(path.join(root, p))).toEqual(Buffer.from(content));
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.statSync(path.join(root, '/case/steps.sh')).mode & 0o111).toBe(0); // not a #! script
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('refuses paths that could leave the root', () => {
    expect(() => bundleScript({ '/case/../etc/passwd': 'x' })).toThrow(/clean/);
    expect(() => bundleScript({ 'case/x': 'x' })).toThrow(/absolute/);
  });
});
