// Cancellation as a value: one AbortSignal for the whole run, aborted on SIGINT/SIGTERM. Every
// wait that can last (HTTP bodies, lock waits, QEMU, builds, regex work, sleeps) takes it, so
// "a signal ends the run within 2 s" is one mechanism, not a handler per place.
import { HarnessError } from './errors.ts';

const controller = new AbortController();

/** Aborted once the harness gets SIGINT or SIGTERM (its reason is an `interrupted` HarnessError). */
export const runSignal: AbortSignal = controller.signal;

/** Abort the run (called by the signal handlers in util/proc.ts; tests may call it too). */
export function abortRun(why = 'interrupted (SIGINT or SIGTERM)'): void {
  if (!controller.signal.aborted) controller.abort(new HarnessError('interrupted', why));
}

/** Throw the typed `interrupted` error if the run (or `signal`) was aborted. */
export function throwIfAborted(signal: AbortSignal = runSignal, what?: string): void {
  if (!signal.aborted) return;
  const r: unknown = signal.reason;
  if (r instanceof HarnessError) throw r;
  throw new HarnessError('interrupted', what ? `interrupted (${what})` : 'interrupted');
}

/** A signal aborted by the run's signal or by any of `others` (a per-request deadline, say). */
export function anySignal(...others: (AbortSignal | undefined)[]): AbortSignal {
  return AbortSignal.any([runSignal, ...others.filter((s): s is AbortSignal => s !== undefined)]);
}

/** Sleep `ms`, ending early with the `interrupted` error when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal = runSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      try {
        throwIfAborted(signal);
      } catch (e) {
        reject(e);
        return;
      }
    }
    const onAbort = (): void => {
      clearTimeout(t);
      try {
        throwIfAborted(signal);
      } catch (e) {
        reject(e);
      }
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
