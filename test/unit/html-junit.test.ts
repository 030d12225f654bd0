import { afterAll, describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import type { RunRecord, Verdict } from '../../harness/observe/types.ts';
import { escapeHtml, renderHtmlReport, type MatrixCell } from '../../harness/report/html.ts';
import { escapeXml, renderJUnit } from '../../harness/report/junit.ts';
import { repoRoot } from '../../harness/util/paths.ts';

const MARTIAN_TEXT = 'martian source 10.53.180.130 from 10.53.180.130, on dev lo';
const RP1 = { 'host:net.ipv4.conf.all.rp_filter': '1' };
const RP0 = { 'host:net.ipv4.conf.all.rp_filter': '0' };
const META = { title: 'rp_filter matrix', runId: 'r-20240501-1', startedAt: '2024-05-01T10:00:00Z', accel: 'kvm' };

function record(kernel: string, sysctls: Record<string, string>, verdict: Verdict): RunRecord {
  const reproduced = verdict === 'reproduced';
  return {
    kernel,
    case: 'rp-filter-mesos',
    sysctls,
    verdict,
    reason: reproduced
      ? 'martian source logged for 10.53.180.130 and host-to-container dropped'
      : 'all probes passed, no martian logged',
    counters: { 'host:TcpExt.IPReversePathFilter': reproduced ? 2 : 0 },
    counterDeltas: reproduced
      ? { 'host:TcpExt.IPReversePathFilter': 2, 'host:Ip.InReceives': 12 }
      : { 'host:Ip.InReceives': 12 },
    probes: [
      {
        name: 'host-to-container',
        ns: 'host',
        rc: reproduced ? null : 0,
        passed: !reproduced,
        durationMs: reproduced ? 1200 : 30,
        stoppedEarly: reproduced,
        output: reproduced ? '' : 'PING ok',
      },
    ],
    signals: [
      {
        name: 'martian',
        kind: 'martian',
        role: 'signature',
        description: 'martian source 10.53.180.130 from 10.53.180.130, on dev lo',
        fired: reproduced,
        count: reproduced ? 2 : 0,
        matches: reproduced ? [MARTIAN_TEXT, MARTIAN_TEXT].map((text) => ({ text })) : [],
      },
      {
        name: 'fib-lo',
        kind: 'tracepoint',
        role: 'evidence',
        description: 'fib:fib_table_lookup events',
        fired: reproduced,
        count: reproduced ? 1 : 0,
        matches: reproduced ? [{ text: 'table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0' }] : [],
      },
    ],
    traceEvents: 17,
    captures: [],
    warnings: [],
    kernelInfo: {
      release: '6.1.0',
      configHash: '0123456789abcdef0123',
      key: `${kernel}-0123456789ab`,
      source: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.tar.xz',
      patches: kernel.endsWith('fixed') ? ['0001-ipv4-fix-rp_filter-on-lo.patch'] : [],
    },
    vm: { accel: 'kvm', machine: 'q35', bootMs: 850, exitCode: 0, timedOut: false },
    durationMs: 4321,
    files: { console: `out/r1/${kernel}/console.log`, results: `out/r1/${kernel}/results.txt` },
  };
}

const CONSOLE = [
  '[    0.000000] Linux version 6.1.0',
  `[    1.500000] IPv4: ${MARTIAN_TEXT}`,
  '[    1.500001] <script>alert(1)</script> & "quoted" \'single\'',
  '\x1b[31mred\x1b[0m and a NUL\x00 here',
].join('\n');
const TRACE = ' ping-42 [000] fib_table_lookup: table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0';

/** vanilla rp1 reproduced, fixed rp1 not-reproduced (expected wrongly as reproduced), rp0 both fine. */
function cells(): MatrixCell[] {
  const ev = { console: CONSOLE, trace: TRACE };
  return [
    { run: record('6.1-vanilla', RP1, 'reproduced'), expected: 'reproduced', evidence: ev },
    { run: record('6.1-fixed', RP1, 'not-reproduced'), expected: 'reproduced', evidence: ev },
    { run: record('6.1-vanilla', RP0, 'not-reproduced'), expected: 'not-reproduced', evidence: ev },
    { run: record('6.1-fixed', RP0, 'not-reproduced'), expected: 'not-reproduced', evidence: ev },
  ];
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
}

function cellButtons(html: string): string[] {
  return [...html.matchAll(/<button\b[^>]*>/g)].map((m) => m[0]).filter((t) => /\sclass="cell[ "]/.test(t));
}

function evidenceSections(html: string): string[] {
  return [...html.matchAll(/<section\b[^>]*>/g)].map((m) => m[0]).filter((t) => /\sclass="evidence[ "]/.test(t));
}

function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = html.indexOf('</section>', start);
  return html.slice(start, end);
}

function scripts(html: string): string[] {
  return [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
}

/** A minimal DOM standing in for the browser: the buttons and sections found in the HTML. */
function fakeDom(html: string, readyState: 'loading' | 'complete') {
  interface FakeEl {
    attrs: Map<string, string>;
    hidden: boolean;
    listeners: Map<string, Array<() => void>>;
    getAttribute(n: string): string | null;
    setAttribute(n: string, v: string): void;
    addEventListener(t: string, f: () => void): void;
    scrollIntoView(): void;
  }
  const el = (tag: string): FakeEl => {
    const attrs = new Map<string, string>();
    for (const m of tag.matchAll(/\s([a-z-]+)(?:="([^"]*)")?/g)) attrs.set(m[1] ?? '', m[2] ?? '');
    const listeners = new Map<string, Array<() => void>>();
    return {
      attrs,
      hidden: attrs.has('hidden'),
      listeners,
      getAttribute: (n) => attrs.get(n) ?? null,
      setAttribute: (n, v) => void attrs.set(n, v),
      addEventListener: (t, f) => void listeners.set(t, [...(listeners.get(t) ?? []), f]),
      scrollIntoView: () => undefined,
    };
  };
  const buttons = cellButtons(html).map(el);
  const sections = new Map(evidenceSections(html).map((t) => [attr(t, 'id') ?? '', el(t)]));
  const docListeners = new Map<string, Array<() => void>>();
  const document = {
    readyState,
    querySelectorAll: (sel: string) => {
      if (sel !== 'button.cell') throw new Error(`unexpected selector ${sel}`);
      return buttons;
    },
    getElementById: (id: string) => sections.get(id) ?? null,
    addEventListener: (t: string, f: () => void) => void docListeners.set(t, [...(docListeners.get(t) ?? []), f]),
  };
  return { document, buttons, sections, docListeners };
}

describe('renderHtmlReport', () => {
  const html = renderHtmlReport(cells(), META);

  it('is one self-contained HTML5 document with the meta', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.match(/<html\b/g)).toHaveLength(1);
    expect(html).toContain('</html>');
    expect(html).toContain('<title>rp_filter matrix</title>');
    expect(html).toContain('r-20240501-1');
    expect(html).toContain('2024-05-01T10:00:00Z');
    expect(html).toContain('accel: kvm');
    // nothing is fetched
    expect(html).not.toMatch(/<link\b|<img\b|<iframe\b|\ssrc=|https?:\/\/(?!cdn\.kernel\.org)/);
    expect(html).not.toMatch(/@import|url\(/);
  });

  it('escapes every piece of evidence (no injected markup)', () => {
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;single&#39;');
    expect(scripts(html)).toHaveLength(1);
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html).not.toContain('\x00');
    expect(html).not.toContain('\x1b');
    expect(html).toContain('red and a NUL here');
    expect(escapeHtml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
  });

  it('renders a kernels x case/variant grid with 4 cell buttons and 4 evidence sections', () => {
    const buttons = cellButtons(html);
    const sections = evidenceSections(html);
    expect(buttons).toHaveLength(4);
    expect(sections).toHaveLength(4);
    expect(html).toContain('rp-filter-mesos [host:net.ipv4.conf.all.rp_filter=1]');
    expect(html).toContain('rp-filter-mesos [host:net.ipv4.conf.all.rp_filter=0]');
    const grid = html.slice(html.indexOf('<table class="grid">'), html.indexOf('</table>', html.indexOf('<table class="grid">')));
    expect(grid.match(/<tr><th scope="row">/g)).toHaveLength(2);
    expect(grid.match(/<th class="col"/g)).toHaveLength(2);

    const ids = sections.map((s) => attr(s, 'id') ?? '');
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    // grid order is row-major (kernel rows); every button targets exactly one section
    const targets = buttons.map((b) => attr(b, 'data-target') ?? '');
    expect([...targets].sort()).toEqual([...ids].sort());
    expect(buttons.map((b) => [attr(b, 'data-kernel'), attr(b, 'data-case'), attr(b, 'data-variant')])).toEqual([
      ['6.1-vanilla', 'rp-filter-mesos', 'host:net.ipv4.conf.all.rp_filter=1'],
      ['6.1-vanilla', 'rp-filter-mesos', 'host:net.ipv4.conf.all.rp_filter=0'],
      ['6.1-fixed', 'rp-filter-mesos', 'host:net.ipv4.conf.all.rp_filter=1'],
      ['6.1-fixed', 'rp-filter-mesos', 'host:net.ipv4.conf.all.rp_filter=0'],
    ]);
    expect(buttons.map((b) => /\sclass="cell (v-[a-z-]+)/.exec(b)?.[1])).toEqual([
      'v-reproduced',
      'v-not-reproduced',
      'v-not-reproduced',
      'v-not-reproduced',
    ]);
    // every section starts hidden
    for (const s of sections) expect(s).toMatch(/\shidden[\s>]/);
  });

  it('puts the evidence of a cell in its section', () => {
    const start = html.indexOf(`id="${attr(evidenceSections(html)[0] ?? '', 'id') ?? 'missing'}"`);
    const body = html.slice(start, html.indexOf('</section>', start));
    expect(body).toContain('martian source 10.53.180.130 from 10.53.180.130, on dev lo (x2)');
    expect(body).toContain('host:TcpExt.IPReversePathFilter');
    expect(body).toMatch(/<td>host:Ip\.InReceives<\/td><td>-<\/td><td>\+12<\/td>/);
    expect(body).toContain('==&gt; dev eth0');
    expect(body).toContain('host-to-container');
    expect(body).toMatch(/<details class="console">[\s\S]*<pre>[\s\S]*Linux version 6\.1\.0/);
    expect(body).toMatch(/<details class="trace">[\s\S]*<pre> ping-42 \[000\] fib_table_lookup/);
  });

  it('marks the cell whose verdict differs from the expectation', () => {
    const buttons = cellButtons(html);
    expect(buttons.filter((b) => /\sclass="[^"]*\bunexpected\b/.test(b))).toHaveLength(1);
    expect(attr(buttons.find((b) => b.includes('unexpected')) ?? '', 'data-kernel')).toBe('6.1-fixed');
    expect(html.match(/unexpected: wanted reproduced/g)?.length).toBeGreaterThanOrEqual(1);
    expect(html).toMatch(/reproduced: 1, not-reproduced: 3, error: 0, timeout: 0, panic: 0 - unexpected: 1/);
  });

  it('lists only the rp_filter=1 variant as a flip', () => {
    const flips = section(html, 'flips');
    expect(flips).toContain('host:net.ipv4.conf.all.rp_filter=1');
    expect(flips).not.toContain('rp_filter=0');
    expect(flips).toContain('6.1-vanilla=reproduced');
    expect(flips).toContain('6.1-fixed=not-reproduced');
    expect(flips).not.toContain('No flips');
    expect(flips.match(/<li\b/g)).toHaveLength(1);

    const none = renderHtmlReport(cells().slice(2), META);
    expect(section(none, 'flips')).toContain('No flips');
  });

  it('builds safe, unique ids from awkward names', () => {
    const c = cells();
    const odd = c.map((x, i) => ({ ...x, run: { ...x.run, kernel: i % 2 ? '6.1 "rc<1>"' : 'é/ü..', case: 'a b' } }));
    const out = renderHtmlReport(odd, META);
    const ids = evidenceSections(out).map((s) => attr(s, 'id') ?? '');
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(out).toContain('data-kernel="6.1 &quot;rc&lt;1&gt;&quot;"');
  });

  it('runs its inline script without throwing and toggles the sections', () => {
    const [script] = scripts(html);
    expect(script).toBeDefined();
    const dom = fakeDom(html, 'complete');
    expect(() => vm.runInNewContext(script ?? '', { document: dom.document })).not.toThrow();
    expect(dom.buttons).toHaveLength(4);
    for (const [i, b] of dom.buttons.entries()) {
      const target = b.getAttribute('data-target') ?? '';
      const sec = dom.sections.get(target);
      expect(sec, `section for button ${i}`).toBeDefined();
      expect(sec?.hidden).toBe(true);
      const clicks = b.listeners.get('click') ?? [];
      expect(clicks).toHaveLength(1);
      clicks[0]?.();
      expect(sec?.hidden).toBe(false);
      expect(b.getAttribute('aria-expanded')).toBe('true');
      clicks[0]?.();
      expect(sec?.hidden).toBe(true);
    }

    // while the document is still loading it waits for DOMContentLoaded
    const loading = fakeDom(html, 'loading');
    vm.runInNewContext(script ?? '', { document: loading.document });
    expect(loading.buttons[0]?.listeners.get('click')).toBeUndefined();
    const ready = loading.docListeners.get('DOMContentLoaded') ?? [];
    expect(ready).toHaveLength(1);
    ready[0]?.();
    expect(loading.buttons[0]?.listeners.get('click')).toHaveLength(1);
  });
});

/** Tag balance and text sanity: a small stand-in for an XML parser. */
function checkXmlish(xml: string): { tags: string[] } {
  const stack: string[] = [];
  const tags: string[] = [];
  const tagRe = /<[^<>]*>/g;
  let last = 0;
  const checkText = (t: string): void => {
    expect(t).not.toMatch(/[<>]/);
    expect(t).not.toMatch(/&(?!(amp|lt|gt|quot|apos|#\d+);)/);
    expect(t).not.toMatch(/[\x00-\x08\x0B\x0C\x0E-\x1F]/);
  };
  for (const m of xml.matchAll(tagRe)) {
    checkText(xml.slice(last, m.index));
    last = m.index + m[0].length;
    const tag = m[0];
    if (tag.startsWith('<?')) continue;
    for (const v of tag.matchAll(/="([^"]*)"/g)) checkText(v[1] ?? '');
    const name = /^<\/?([A-Za-z][\w-]*)/.exec(tag)?.[1];
    expect(name, tag).toBeDefined();
    if (tag.startsWith('</')) {
      expect(stack.pop(), `closing ${tag}`).toBe(name);
    } else if (!tag.endsWith('/>')) {
      stack.push(name ?? '');
      tags.push(name ?? '');
    } else {
      tags.push(name ?? '');
    }
  }
  checkText(xml.slice(last));
  expect(stack).toEqual([]);
  return { tags };
}

function rootAttrs(xml: string): Record<string, string> {
  const tag = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? '';
  return Object.fromEntries([...tag.matchAll(/\s(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

describe('renderJUnit', () => {
  const jmeta = { name: 'kernel-repro r-20240501-1', timestamp: '2024-05-01T10:00:00Z' };

  it('has one testcase per cell and counts one failure for the wrong expectation', () => {
    const xml = renderJUnit(cells(), jmeta);
    const { tags } = checkXmlish(xml);
    expect(tags.filter((t) => t === 'testcase')).toHaveLength(4);
    expect(tags.filter((t) => t === 'testsuite')).toHaveLength(1);
    expect(tags.filter((t) => t === 'failure')).toHaveLength(1);
    expect(tags.filter((t) => t === 'error')).toHaveLength(0);
    expect(rootAttrs(xml)).toMatchObject({ tests: '4', failures: '1', errors: '0' });
    expect(xml).toMatch(/<testsuite [^>]*name="rp-filter-mesos" tests="4" failures="1" errors="0"/);
    expect(xml).toContain(
      '<testcase classname="6.1-fixed" name="rp-filter-mesos[host:net.ipv4.conf.all.rp_filter=1]" time="4.321">',
    );
    expect(xml).toContain('<failure message="expected reproduced, got not-reproduced"');
    expect(xml).toMatch(/<system-out>[^<]*martian source 10\.53\.180\.130 from 10\.53\.180\.130, on dev lo \(x2\)/);
    expect(xml).toMatch(/<system-out>[^<]*==&gt; dev eth0/);
  });

  it('reports an error for error/timeout/panic without an expectation, and none when all match', () => {
    const c = cells();
    const ok = renderJUnit(
      c.map((x) => ({ run: x.run, expected: x.run.verdict })),
      jmeta,
    );
    expect(rootAttrs(ok)).toMatchObject({ tests: '4', failures: '0', errors: '0' });

    const broken: RunRecord = {
      ...record('6.2-rc1', {}, 'panic'),
      case: 'other-case',
      reason: 'kernel panic <during> boot & "probes"',
      panic: { kind: 'panic', title: 'Kernel panic - not syncing: VFS', text: 'Call Trace:\n <TASK>\x07\n' },
    };
    const xml = renderJUnit([...c.map((x) => ({ run: x.run })), { run: broken }], jmeta);
    const { tags } = checkXmlish(xml);
    expect(tags.filter((t) => t === 'testsuite')).toHaveLength(2);
    expect(tags.filter((t) => t === 'testcase')).toHaveLength(5);
    expect(rootAttrs(xml)).toMatchObject({ tests: '5', failures: '0', errors: '1' });
    expect(xml).toContain('<testcase classname="6.2-rc1" name="other-case" time="4.321">');
    expect(xml).toContain('<error message="panic: kernel panic &lt;during&gt; boot &amp; &quot;probes&quot;"');
    expect(xml).toContain('&lt;TASK&gt;');
    expect(xml).not.toContain('\x07');
  });

  it('escapes XML and drops characters invalid in XML 1.0', () => {
    expect(escapeXml(`a<b>&"c"'\x00\x08\x0b\x1f\ttab\nnl`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;\ttab\nnl');
    const c = cells()[1];
    expect(c).toBeDefined();
    if (!c) return;
    const run = { ...c.run, kernel: 'k<\x01>"', reason: 'bad\x00reason <x>' };
    const xml = renderJUnit([{ run, expected: 'reproduced' }], jmeta);
    checkXmlish(xml);
    expect(xml).toContain('classname="k&lt;&gt;&quot;"');
    expect(xml).toContain('reason: badreason &lt;x&gt;');
  });
});

describe('renderJUnit against the Jenkins xunit JUnit schema (test/fixtures/junit-10.xsd, xmllint)', () => {
  const xsd = path.join(repoRoot, 'test/fixtures/junit-10.xsd');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-junit-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const validate = (xml: string, name: string): { ok: boolean; output: string } => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, xml);
    try {
      execFileSync('xmllint', ['--noout', '--schema', xsd, file], { stdio: 'pipe' });
      return { ok: true, output: '' };
    } catch (e) {
      return { ok: false, output: String((e as { stderr?: Buffer }).stderr ?? e) };
    }
  };

  it('passes, errors, failures and hostile text are valid', () => {
    const c = cells();
    const broken: RunRecord = { ...record('6.2-rc1', {}, 'timeout'), case: 'other', reason: 'deadline <60s> & "more"\x01', panic: { kind: 'oops', title: 'Oops: 0002', text: 'RIP: \x1b[31mx\x1b[0m' } };
    const xml = renderJUnit([...c, { run: broken }, { run: { ...broken, kernel: 'k<&>"\'', durationMs: NaN } }], { name: 'kernel-repro matrix m', timestamp: '2024-05-01T10:00:00Z' });
    const r = validate(xml, 'mixed.xml');
    expect(r.output).toBe('');
    expect(r.ok).toBe(true);
    expect(validate(renderJUnit([], { name: 'empty', timestamp: '2024-05-01T10:00:00Z' }), 'empty.xml').ok).toBe(true);
  });

  it('the schema is really applied: a timestamp on <testsuites> is refused', () => {
    const xml = renderJUnit(cells(), { name: 'm', timestamp: '2024-05-01T10:00:00Z' }).replace('<testsuites ', '<testsuites timestamp="2024-05-01T10:00:00Z" ');
    const r = validate(xml, 'timestamp.xml');
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/attribute 'timestamp': The attribute 'timestamp' is not allowed/);
  });
});
