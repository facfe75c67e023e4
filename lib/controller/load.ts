import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ControllerStageConfig, LabConfig } from '../config/schema.js';
import type { Topology } from '../config/topology.js';
import { UsageError } from '../errors.js';
import { hashOf } from '../plan/key.js';
import { treeHash } from '../stages/content.js';
import { hasSsh, inventoryIdentity, KIND_GROUPS, limitTokens } from './inventory.js';
import { playbookReads } from './playbook.js';

export interface LoadedControllerStage {
  name: string;
  config: ControllerStageConfig;
  /** Where it runs: `cwd`, else the playbook's directory, else the config's. */
  cwd: string;
  /** Every file and directory whose content is part of its key. */
  reads: string[];
  /** Hash of its definition, of what it reads and of lab's inventory: with the machines' keys, its key. */
  definitionHash: string;
}

/**
 * Reads what each controller stage depends on and hashes it. Paths enter the hash relative to the
 * config's directory, so that a checkout elsewhere has the same keys. A play that targets a vm is
 * refused here (exit 2): lab has no SSH into a vm.
 */
export function loadControllerStages(config: LabConfig, topology: Topology, configDir: string): LoadedControllerStage[] {
  const inventory = hashOf(inventoryIdentity(config, topology));
  return config.controller.map((stage, index) => {
    const field = `controller.${index}`;
    const reads = [...stage.inventory, ...stage.reads];
    if (stage.playbook) {
      const found = playbookReads(stage.playbook, `${field}.playbook`);
      assertNoUnreachableTargeted(config, stage, found.hosts, field);
      reads.push(...found.paths);
    } else if (stage.run![0]!.includes('/')) {
      if (!existsSync(stage.run![0]!)) throw new UsageError(`invalid config: ${field}.run.0: ${stage.run![0]} does not exist`);
      reads.push(stage.run![0]!);
    }
    const relative = (p: string) => path.relative(configDir, p);
    const contents = Object.fromEntries([...new Set(reads)].sort().map((p) => [relative(p), treeHash(p)]));
    const definition = {
      name: stage.name,
      playbook: stage.playbook && relative(stage.playbook),
      run: stage.run && [stage.run[0]!.includes('/') ? relative(stage.run[0]!) : stage.run[0]!, ...stage.run.slice(1)],
      tags: stage.tags,
      limit: stage.limit,
      extraVars: stage.extraVars,
      cwd: stage.cwd && relative(stage.cwd),
    };
    return {
      name: stage.name,
      config: stage,
      cwd: stage.cwd ?? (stage.playbook ? path.dirname(stage.playbook) : configDir),
      reads: [...new Set(reads)].sort(),
      definitionHash: hashOf({ definition, contents, inventory }),
    };
  });
}

/** A play whose hosts (narrowed by the stage's limit) include a vm or a diskless machine would fail unreachable: refused before anything is made. */
function assertNoUnreachableTargeted(config: LabConfig, stage: ControllerStageConfig, patterns: readonly string[], field: string): void {
  const unreachable = config.machines.filter((m) => !hasSsh(m));
  if (unreachable.length === 0) return;
  const names = (pattern: string) => {
    const tokens = limitTokens(pattern);
    return unreachable.filter((m) => tokens.some((t) => t === 'all' || t === '*' || t === m.name || m.groups.includes(t) || t === KIND_GROUPS[m.kind] || (t.includes('*') && globMatches(t, m.name))));
  };
  const limited = stage.limit ? new Set(names(stage.limit).map((v) => v.name)) : undefined;
  for (const pattern of patterns) {
    const machine = names(pattern).find((v) => !limited || limited.has(v.name));
    if (machine) {
      const what = machine.kind === 'vm' ? `the vm '${machine.name}'` : `the diskless machine '${machine.name}'`;
      throw new UsageError(
        `invalid config: ${field}.playbook: a play for hosts '${pattern}' includes ${what}, which Ansible cannot reach (lab has no SSH into a ${machine.kind === 'vm' ? 'vm' : 'diskless machine'})`,
        `name the play's hosts by group (lab puts containers in lab_containers), or set ${field}.limit`,
      );
    }
  }
}

function globMatches(glob: string, name: string): boolean {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(name);
}
