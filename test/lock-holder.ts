// A lock record for a live process of this machine (a test's `sleep`, standing in for a long
// build), written where util/lock.ts looks: the lock is that process's for as long as it lives.
import fs from 'node:fs';
import { lockFileOf, systemProbe, type LockOwner } from '../harness/util/lock.ts';

export function holdLockFor(pid: number, target: string, o: { what: string; command?: string; since?: Date; token?: string }): LockOwner {
  const rec: LockOwner = {
    pid,
    host: systemProbe.host(),
    ...(systemProbe.bootId() ? { bootId: systemProbe.bootId()! } : {}),
    ...(systemProbe.pidNs() ? { pidNs: systemProbe.pidNs()! } : {}),
    startTime: systemProbe.startTime(pid)!,
    what: o.what,
    command: o.command ?? 'kernel-repro repro',
    since: (o.since ?? new Date()).toISOString(),
    token: o.token ?? 'held',
  };
  fs.writeFileSync(lockFileOf(target), JSON.stringify(rec));
  return rec;
}
