import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { run } from '../exec.js';
import { findCommand } from '../host/prereq.js';

const QEMU_IMG_TIMEOUT_MS = 10_000;
const SECTOR = 512;
const QCOW_MAGIC = Buffer.from('QFI\xfb', 'latin1');

/** The first bytes of a file (fewer when it is shorter). */
function head(file: string, bytes: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    return buffer.subarray(0, readSync(fd, buffer, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * A raw image boots only with a boot sector: SeaBIOS refuses a disk without 0x55 0xAA at byte 510
 * (an MBR, or GPT's protective one). Anything is a raw image to qemu, so this is what tells a disk
 * from a text file.
 */
function rawProblem(file: string): string | undefined {
  const sector = head(file, SECTOR);
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) return 'not a disk image: neither a format qemu-img knows nor a raw disk with a boot sector';
  return undefined;
}

/**
 * Why `file` is not a disk image a vm can boot, or undefined when it is one. With qemu-img (the
 * host's by default; null for none, in tests), what `qemu-img info` says; without it, a qcow2
 * header or a raw disk's boot sector is all lab can tell.
 */
export async function diskImageProblem(file: string, qemuImg: string | null = findCommand('qemu-img') ?? null): Promise<string | undefined> {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return 'does not exist';
  }
  if (!stat.isFile() && !stat.isBlockDevice()) return 'is not a file: a disk image is a file (or a block device)';
  if (!qemuImg) return head(file, QCOW_MAGIC.length).equals(QCOW_MAGIC) ? undefined : rawProblem(file);
  const info = await run([qemuImg, 'info', '--output=json', '-U', '--', file], { allowFailure: true, timeout: QEMU_IMG_TIMEOUT_MS });
  if (info.exitCode !== 0) return `qemu-img cannot read it: ${info.stderr.trim().split('\n')[0]}`;
  const { format } = JSON.parse(info.stdout) as { format: string };
  return format === 'raw' ? rawProblem(file) : undefined;
}

/** Whether the host can check disks before anything is made (else they are checked when a vm starts). */
export const canInspectDisks = (): boolean => findCommand('qemu-img') !== undefined;
