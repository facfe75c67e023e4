import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../exec.js';
import { LAB_RUN_DIR } from '../paths.js';
import { FAST, holdsWithin } from '../wait.js';

export interface Accelerator {
  kind: 'kvm' | 'tcg';
  why: string;
}

/**
 * A boot sector that waits for three ticks of the BIOS clock (about 165 ms: the PIT's timer
 * interrupt working), then writes 'K' to I/O port 0x403 and halts:
 *   cli; xor ax,ax; mov ds,ax; sti; mov bx,[0x46c]
 *   wait: mov ax,[0x46c]; sub ax,bx; cmp ax,3; jb wait
 *   mov dx,0x403; mov al,'K'; out dx,al; halt: hlt; jmp halt
 * KVM that opens but keeps no time (nested in some hypervisors: this machine's timer ran 20 times
 * slow, and neither iPXE nor Linux ever got through) fails it, and the vm runs in software instead.
 */
const PROBE_CODE = 'FA31C08ED8FB8B1E6C04A16C0429D883F80372F6BA0304B04BEEF4EBFD';
const PROBE_WITHIN_MS = 1500;
/** The answer holds until the host reboots (its boot id changes). */
const CACHE = path.join(LAB_RUN_DIR, 'kvm-probe.json');

export function probeImage(): Buffer {
  const code = Buffer.from(PROBE_CODE, 'hex');
  return Buffer.concat([code, Buffer.alloc(510 - code.length), Buffer.from([0x55, 0xaa])]);
}

function kvmOpenable(kvm: string): string | undefined {
  if (!existsSync(kvm)) return `${kvm} does not exist (no KVM in this kernel, or not passed to this VM)`;
  try {
    accessSync(kvm, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (error) {
    return `${kvm} cannot be opened (${(error as NodeJS.ErrnoException).code})`;
  }
}

/**
 * KVM when /dev/kvm opens and a probe guest's clock ticks on time under it; qemu's software
 * emulation (TCG, several times slower) otherwise, with the reason.
 */
export async function chooseAccelerator(kvm = '/dev/kvm'): Promise<Accelerator> {
  const closed = kvmOpenable(kvm);
  if (closed) return { kind: 'tcg', why: `${closed}: software emulation (slower)` };
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  try {
    const cached = JSON.parse(readFileSync(CACHE, 'utf8')) as Accelerator & { bootId: string };
    if (cached.bootId === bootId) return { kind: cached.kind, why: cached.why };
  } catch {
    // not probed since boot
  }
  const accelerator = await probeKvm();
  mkdirSync(path.dirname(CACHE), { recursive: true });
  writeFileSync(CACHE, `${JSON.stringify({ ...accelerator, bootId })}\n`);
  return accelerator;
}

async function probeKvm(): Promise<Accelerator> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-kvm-probe-'));
  try {
    const image = path.join(dir, 'probe.img');
    const out = path.join(dir, 'out');
    writeFileSync(image, probeImage());
    const started = Date.now();
    const abort = new AbortController();
    const qemu = run(
      ['qemu-system-x86_64', '-nodefaults', '-display', 'none', '-m', '16', '-accel', 'kvm', '-drive', `file=${image},format=raw,if=ide,snapshot=on`, '-boot', 'order=c',
        '-chardev', `file,id=probe,path=${out}`, '-device', 'isa-debugcon,iobase=0x403,chardev=probe'],
      { abort: abort.signal, timeout: PROBE_WITHIN_MS + 2000, allowFailure: true },
    ).catch((error: Error) => error);
    const ticked = await holdsWithin(() => existsSync(out) && readFileSync(out, 'utf8').includes('K'), { within: PROBE_WITHIN_MS, every: FAST });
    abort.abort();
    const ended = await qemu;
    if (ticked) return { kind: 'kvm', why: `/dev/kvm is usable (a probe guest kept time: ${Date.now() - started} ms)` };
    const said = ended instanceof Error ? '' : ended.stderr.trim().split('\n')[0];
    return { kind: 'tcg', why: `/dev/kvm opens, but a probe guest's clock did not tick on time under it${said ? ` (${said})` : ''} (nested virtualization?): software emulation (slower)` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
