// Cache locks (util/lock.ts): a lock is taken over only from a holder that is gone, never from a
// live one however long it has been silent (defect 12); waits say who holds the lock and stop on
// the run's signal.
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { withLock } from '../../harness/util/cache.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const children: ResultPromise[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await c.catch(() => undefined);
  }
});

/** A child process that takes the lock on `target` through the harness's withLock and holds it until killed. */
async function holderProcess(dir: string, target: string): Promise<{ child: ResultPromise }> {
  const script = path.join(dir, 'holder.mts');
  fs.writeFileSync(
    script,
    `import { withLock } from ${JSON.stringify(path.join(repoRoot, 'harness/util/cache.ts'))};\n` +
      `await withLock(${JSON.stringify(target)}, async () => { console.log('locked'); await new Promise(() => setInterval(() => {}, 1000)); });\n`,
  );
  // node itself with tsx's loader (the tsx command would be a wrapper around another process)
  const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = execa(process.execPath, ['--import', loader, script], { reject: false, stdin: 'ignore' });
  children.push(child);
  await new Promise<void>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && res());
    void child.then((r) => rej(new Error(`holder ended: ${String(r.stderr)}`)));
  });
  return { child }; // (not the child itself: a promise, an async function would wait for its end)
}

/** Every lock-looking file and directory next to `target`, dated `ms` back: as if its holder had not been heard of since. */
function backdate(dir: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  for (const name of fs.readdirSync(dir)) if (name.includes('lock')) fs.utimesSync(path.join(dir, name), t, t);
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('defect 12: a live holder keeps its lock however long it is silent', () => {
  it('a holder that is alive but frozen (no heartbeat for 2 min) is waited for, not taken over; once it is killed, the lock is taken over', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const { child: holder } = await holderProcess(dir, target);
    holder.kill('SIGSTOP'); // its event loop frozen: it refreshes nothing
    backdate(dir, 120_000);
    let ran = false;
    const waiter = withLock(target, async () => {
      ran = true;
    }, () => undefined);
    await sleepMs(2500);
    expect(ran).toBe(false); // proper-lockfile (stale: 30 s) took it over here
    holder.kill('SIGKILL');
    await holder.catch(() => undefined);
    await waiter;
    expect(ran).toBe(true);
  }, 20_000);
});
