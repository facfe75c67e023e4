import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';

/** What a lab with controller stages needs on the host. */
export const CONTROLLER_TOOLS = [
  { command: 'ansible-playbook', debianPackage: 'ansible', why: "runs the lab's controller stages (playbooks across the lab)" },
  { command: 'ssh', debianPackage: 'openssh-client', why: 'lets the controller into the machines' },
  { command: 'ssh-keygen', debianPackage: 'openssh-client', why: "makes the lab's SSH key pair" },
];

/** The lab's key pair, made once (0600, in the lab's state directory, closed to other users). True when it was made now. */
export async function ensureKeyPair(key: string, comment: string): Promise<boolean> {
  if (existsSync(key) && existsSync(`${key}.pub`)) return false;
  mkdirSync(path.dirname(key), { recursive: true, mode: 0o700 });
  chmodSync(path.dirname(key), 0o700);
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', key], { timeout: 30_000 });
  chmodSync(key, 0o600);
  return true;
}

/** A machine's ed25519 host key, read from its root (the ssh stage made it). */
export function hostKeyOf(root: string): string | undefined {
  const file = path.join(root, 'etc/ssh/ssh_host_ed25519_key.pub');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * Ends SSH's control masters (ControlPersist) left by a run, each by its own socket: they would
 * outlive the command by a minute, holding sessions in the machines.
 */
export async function endControlMasters(socketsDir: string): Promise<void> {
  if (!existsSync(socketsDir)) return;
  await Promise.all(
    readdirSync(socketsDir).map((socket) =>
      run(['ssh', '-o', `ControlPath=${path.join(socketsDir, socket)}`, '-O', 'exit', 'lab-control-master'], { timeout: 10_000, allowFailure: true }),
    ),
  );
}

/**
 * The environment entry every process of one controller stage run carries: the command on the
 * host, and, sent by the SSH client (SetEnv, accepted by the ssh stage's sshd config), every
 * process its sessions start in the machines, also the ones reparented to a machine's init
 * once their session ended. What a timeout ends, by pid.
 */
export const RUN_TAG = 'LAB_CONTROLLER_RUN';
