import { existsSync, readFileSync } from 'node:fs';
import type { LabConfig } from '../config/schema.js';
import { labDirs } from '../layout.js';
import { RUN_TAG } from '../controller/ssh.js';
import { defineStage } from './define.js';

/** The lab's public key, as the stage installs it; none before `lab up` made the key pair. */
export function labPublicKey(config: LabConfig): string | undefined {
  const file = `${labDirs(config).sshKey}.pub`;
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * What Ansible needs in a machine, by distribution: an SSH server, Python for its modules and,
 * where apt is, python3-apt (without it, Ansible's apt module tries to install it, from a lab
 * network that reaches no mirror).
 */
const PACKAGES: Record<LabConfig['image']['distribution'], string[]> = {
  debian: ['openssh-server', 'python3', 'python3-apt'],
  ubuntu: ['openssh-server', 'python3', 'python3-apt'],
  arch: ['openssh', 'python'],
};

/**
 * The built-in stage of a lab with controller stages, right after `system`: an SSH server that
 * lets the lab's key in as root (keys only), and Python for Ansible's modules. The host keys are
 * made here, once per build of the stage, so every restore of a snapshot keeps them.
 */
export const sshStage = (config: LabConfig) => defineStage({
  packages: PACKAGES[config.image.distribution],
  inputs: (lab) => ({ key: labPublicKey(lab.config) ?? null }),
  async run(ctx) {
    const key = labPublicKey(ctx.lab.config);
    if (!key) throw new Error(`the lab's SSH key pair is missing (${labDirs(ctx.lab.config).sshKey}.pub): lab up makes it`);
    await ctx.exec(['install', '-d', '-m', '0700', '/root/.ssh']);
    await ctx.writeFile('/root/.ssh/authorized_keys', `${key}\n`, { mode: 0o600 });
    await ctx.writeFile('/etc/ssh/sshd_config.d/lab.conf', `PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n# A controller stage's sessions carry its run's tag: its timeout ends what they started.\nAcceptEnv ${RUN_TAG}\n`);
    // The package made host keys when it was installed; any type missing is made now.
    await ctx.exec(['ssh-keygen', '-A']);
    await ctx.enable(config.image.distribution === 'arch' ? 'sshd' : 'ssh');
  },
});
