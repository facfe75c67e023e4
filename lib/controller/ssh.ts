import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import { childrenOf, processStartTime, signalProcess } from '../state/process.js';

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
 * Ends every SSH session in a machine, with all each started: the processes under its SSH
 * server's listener (the listener itself stays). Found on the host through /proc, by pid: what a
 * play that timed out left running in the machine.
 */
export function endSshSessions(leaderPid: number): number {
  const listener = childrenOf(leaderPid).find((pid) => commOf(pid) === 'sshd');
  if (listener === undefined) return 0;
  const tree: number[] = [];
  const walk = (pid: number) => {
    for (const child of childrenOf(pid)) {
      tree.push(child);
      walk(child);
    }
  };
  walk(listener);
  for (const pid of tree) if (processStartTime(pid) !== undefined) signalProcess(pid, 'SIGKILL');
  return tree.length;
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
