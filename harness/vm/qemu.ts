// The only place that builds QEMU command lines (as vmtest keeps them in one small module). Pure.

export type Accel = 'kvm' | 'tcg';
export type Machine = 'microvm' | 'pc';

export interface VmSpec {
  accel: Accel;
  /** microvm boots the uncompressed vmlinux through its PVH entry; pc boots bzImage */
  machine: Machine;
  kernel: string;
  initrd: string;
  /** extra kernel command-line words */
  append?: string[];
  memoryMb?: number;
  /** where the guest agent's result channel (second serial port, ttyS1) is written */
  resultsFile?: string;
  /** a controlled session: QEMU is driven over QMP, the guest starts paused (-S) or from a
   *  snapshot, and the harness sends the case on the console's input (QEMU's stdin) */
  session?: { qmpSocket: string; incoming?: string };
}

/** QEMU's exec: migration URIs go through /bin/sh -c: quote file names in them. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export const BASE_CMDLINE = [
  'console=ttyS0',
  'reboot=t', // triple-fault reboot: with -no-reboot QEMU then exits (a plain reboot loops on microvm)
  'panic=-1', // a panic reboots at once, which ends QEMU
  'oops=panic', // an oops ends the run too, with its text on the console
  'rdinit=/init',
  'printk.time=1',
  'dummy.numdummies=0', // a built-in dummy driver would otherwise create dummy0 in the initial namespace
];

export function kernelCmdline(spec: Pick<VmSpec, 'append'>): string {
  return [...BASE_CMDLINE, ...(spec.append ?? [])].join(' ');
}

export function qemuArgs(spec: VmSpec): string[] {
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-M',
    spec.machine === 'microvm' ? 'microvm' : 'pc',
    '-accel',
    spec.accel,
  ];
  if (spec.accel === 'kvm') args.push('-cpu', 'host');
  args.push(
    '-m',
    `${spec.memoryMb ?? 256}M`,
    '-smp',
    '1',
    '-kernel',
    spec.kernel,
    '-initrd',
    spec.initrd,
    '-append',
    kernelCmdline(spec),
    // console on stdio (streamed to the harness), results on a second 16550 at COM2
    '-chardev',
    'stdio,id=con,signal=off',
    '-serial',
    'chardev:con',
    '-chardev',
    // a file: QEMU's 16550 drops bytes a non-blocking backend (socket, pipe) cannot take at once
    spec.resultsFile ? `file,id=res,path=${spec.resultsFile}` : 'null,id=res',
    '-device',
    'isa-serial,chardev=res,iobase=0x2f8,irq=3',
    '-nic',
    'none', // the guest has no network to the outside
  );
  if (spec.session) {
    args.push('-qmp', `unix:${spec.session.qmpSocket},server=on,wait=off`);
    // restored from a snapshot: the saved state arrives paused; otherwise start paused so that the
    // harness is connected to the result channel before the guest writes anything
    // the saved state on file descriptor 3, which the harness opens (run's fd3File): QEMU reads the
    // file itself, rather than through a pipe from `cat`
    if (spec.session.incoming) args.push('-incoming', 'fd:3');
    else args.push('-S');
  }
  return args;
}

/** Recognise QEMU's own fatal accelerator errors in its output. */
export function accelFailure(output: string): string | null {
  const m =
    /KVM internal error[^\n]*/.exec(output) ??
    /failed to set MSR[^\n]*/.exec(output) ??
    /Could not access KVM kernel module[^\n]*/.exec(output) ??
    /failed to initialize kvm[^\n]*/i.exec(output);
  return m ? m[0].trim() : null;
}
