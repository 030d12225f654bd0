// Repeats of one kernel x case x sysctls, pure: the seed of each repeat (derived from one base seed,
// so that a whole series can be run again with --seed), its jitter, and what a series says.
import crypto from 'node:crypto';
import type { RepeatMode } from '../agent/protocol.ts';
import { HarnessError } from '../util/errors.ts';

export interface RepeatPlan {
  mode: RepeatMode;
  /** 32 hex digits: every repeat's seed derives from it and the repeat's index */
  baseSeed: string;
  /** each repeat waits a seeded 0..jitterMs before its probes (independent mode) */
  jitterMs: number;
  /** restore every repeat from a case snapshot (false: set the case up every time) */
  snapshot: boolean;
}

export interface RepeatRun {
  /** 1-based */
  index: number;
  mode: RepeatMode;
  /** 64 hex digits, for the guest's CRNG */
  seed: string;
  jitterUs: number;
  snapshot: boolean;
}

const BASE_SEED_RE = /^[0-9a-f]{32}$/;

export function newBaseSeed(): string {
  return crypto.randomBytes(16).toString('hex');
}

/** --seed: 32 hex digits (as a run's JSON records it). */
export function parseBaseSeed(text: string, field = '--seed'): string {
  const s = text.trim().toLowerCase();
  if (!BASE_SEED_RE.test(s)) throw new HarnessError('bad-input', `${field} must be 32 hex digits (a repeats.baseSeed from a run's JSON), got "${text}"`, { field });
  return s;
}

/** The seed of repeat `index` (1-based): the same for every kernel, so that kernels are compared on the same inputs. */
export function repeatSeed(baseSeed: string, index: number): string {
  return crypto.createHash('sha256').update(`kernel-repro repeat ${baseSeed} ${index}`).digest('hex');
}

/** The seeded delay of a repeat, in µs: 0..jitterMs ms. */
export function jitterUs(seed: string, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  const n = parseInt(seed.slice(0, 8), 16);
  return n % (jitterMs * 1000 + 1);
}

export function repeatRun(plan: RepeatPlan, index: number): RepeatRun {
  const seed = repeatSeed(plan.baseSeed, index);
  return { index, mode: plan.mode, seed, jitterUs: plan.mode === 'independent' ? jitterUs(seed, plan.jitterMs) : 0, snapshot: plan.snapshot };
}

/** The plan for a series: the case's `repeats`, then the command line (--replay, --seed). */
export function repeatPlan(caseRepeats: { mode: RepeatMode; jitterMs: number; snapshot: boolean }, cli: { replay?: boolean; seed?: string }): RepeatPlan {
  return {
    mode: cli.replay ? 'replay' : caseRepeats.mode,
    baseSeed: cli.seed ? parseBaseSeed(cli.seed) : newBaseSeed(),
    jitterMs: caseRepeats.jitterMs,
    snapshot: caseRepeats.snapshot,
  };
}

/** What a series of repeats did, from its records: for the reports. */
export interface RepeatsSummary {
  baseSeed: string;
  /** per case: its mode and jitter */
  cases: Array<{ case: string; mode: RepeatMode; jitterMs: number; snapshot: boolean }>;
  runs: number;
  /** independent repeats whose guest CRNG was reseeded (RNDADDENTROPY and RNDRESEEDCRNG ok) */
  reseeded: number;
  independent: number;
  /** case snapshots made, and repeats restored from one (their setup skipped) */
  caseSnapshotsCreated: number;
  restored: number;
}

export function summarizeRepeats(
  baseSeed: string,
  plans: Array<{ case: string; plan: RepeatPlan }>,
  runs: Array<{ vm: { repeat?: { mode: RepeatMode; applied: { addEntropy: string; reseed: string } | null; caseSnapshot: 'restored' | 'created' | 'none' } } }>,
): RepeatsSummary {
  const reps = runs.map((r) => r.vm.repeat).filter((x): x is NonNullable<typeof x> => x !== undefined);
  const independent = reps.filter((r) => r.mode === 'independent');
  return {
    baseSeed,
    cases: plans.map((p) => ({ case: p.case, mode: p.plan.mode, jitterMs: p.plan.jitterMs, snapshot: p.plan.snapshot })),
    runs: reps.length,
    reseeded: independent.filter((r) => r.applied?.addEntropy === 'ok' && r.applied.reseed === 'ok').length,
    independent: independent.length,
    caseSnapshotsCreated: reps.filter((r) => r.caseSnapshot === 'created').length,
    restored: reps.filter((r) => r.caseSnapshot === 'restored').length,
  };
}

/** One line for the human reports. */
export function describeRepeats(s: RepeatsSummary): string {
  const modes = [...new Set(s.cases.map((c) => c.mode))];
  const how =
    modes.length === 1 && modes[0] === 'replay'
      ? 'replays of the case snapshot (no reseed, no clock, no jitter)'
      : `independent: guest CRNG reseeded in ${s.reseeded} of ${s.independent}, clock set, jitter up to ${Math.max(...s.cases.map((c) => c.jitterMs))} ms${modes.length > 1 ? ' (some cases replay)' : ''}`;
  return `Repeats: ${how}; ${s.caseSnapshotsCreated} case snapshot(s) made, ${s.restored} of ${s.runs} runs restored from one (setup skipped); base seed ${s.baseSeed} (--seed ${s.baseSeed} runs the same seeds again)`;
}
