import type { LabConfig, MachineConfig } from '../config/schema.js';
import type { Topology, TopologyMachine } from '../config/topology.js';
import type { Machine } from '../machine-verbs.js';
import type { RunResult } from '../exec.js';

/** What a stage sees of the lab: its config plus the addresses everything ends up at. */
export interface LabView {
  config: LabConfig;
  machine: MachineConfig;
  /** The lab's DNS domain (`zone.domain`): every machine is `<name>.<domain>`. */
  domain: string;
  /** The DNS/DHCP server's address as this machine reaches it (on a network they share, if any). */
  dnsAddress?: string;
  /** Prefix length of the first network's subnet. */
  prefixLength: number;
  /** Every network and every machine's interfaces. */
  topology: Topology;
  /** This machine's interfaces. */
  self: TopologyMachine;
  /** The directory of the lab's config file, where the team's content sits (modules/, roles/, ...); none for the default lab. */
  configDir?: string;
}

/** Offline helpers for a stage's `run`: the machine is stopped, its root is being built. */
export interface StageContext {
  lab: LabView;
  /** Writes a file into the machine's root (path as seen inside the machine). */
  writeFile(file: string, content: string, options?: { mode?: number }): Promise<void>;
  /** The text of a fixture file (relative to the fixtures directory); list it in `fixtures`. */
  fixture(name: string): Promise<string>;
  /** Fills `{{name}}` placeholders of a fixture and writes it into the machine. */
  template(name: string, file: string, values: Record<string, string | number>, options?: { mode?: number }): Promise<void>;
  /** Runs a command inside the machine's root (no boot, host network); fails the stage on a non-zero exit. */
  exec(argv: readonly string[], options?: { input?: string; timeout?: number }): Promise<RunResult>;
  /** `systemctl enable` the units, so they start on boot. */
  enable(...units: string[]): Promise<void>;
  /** Runs a shell script in the machine with /bin/sh, the fixtures under $LAB_FIXTURES (what a `.sh` stage does). */
  script(script: string, fixtures: readonly string[], env: Record<string, string>): Promise<void>;
  log(line: string): void;
}

export interface StageDefinition {
  /** Installed from the image's mirror, through the host's network, before `run`. */
  packages?: readonly string[];
  /** Fixture files the stage reads: their content is part of the cache key. */
  fixtures?: readonly string[];
  /**
   * Runs with its machine booted (its earlier stages applied, the machines it depends on up),
   * commands going over the lab network; then the machine is stopped cleanly and snapshotted.
   * Its key includes the keys of the machines it depends on.
   */
  online?: boolean;
  /** Targets of the machine's read-only binds whose content the stage reads: part of the cache key. */
  binds?: readonly string[];
  /** Deadline of each command the stage runs, in seconds; default: the config's `stageLimits.timeoutSeconds` (15 minutes). */
  timeoutSeconds?: number;
  /** Lab values the stage's result depends on (other machines, addresses): part of the cache key. */
  inputs?(lab: LabView): unknown;
  run?(ctx: StageContext): Promise<void>;
  /** Runs once the machine is booted with its stages applied; throws (AssertionFailure) when the stage did not work. */
  check?(machine: Machine, lab: LabView): Promise<void>;
  /**
   * Waits, after every boot of the machine (built or cached), until what the stage set up serves
   * (a unit active, a port open), each wait within `timeoutMs` (the config's boot.timeoutSeconds);
   * the machines that depend on it wait for it. Throws when it does not in time.
   */
  ready?(machine: Machine, lab: LabView, timeoutMs: number): Promise<void>;
}

/** Identity function that gives a stage module its types. */
export function defineStage(definition: StageDefinition): StageDefinition {
  return definition;
}
