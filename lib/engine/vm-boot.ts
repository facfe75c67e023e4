import type { LabState } from '../state/state.js';
import type { LoadedMachine } from '../stages/load.js';
import type { Lab } from './lab.js';
import type { MachineReport } from './machine-job.js';
import { isRunning, startMachine, stopMachine } from './machines.js';

/**
 * Starts the vms that are not running, and restarts those whose dependencies (gw, their DHCP and
 * boot server) booted in this run, so that they boot against them afresh. All at once.
 */
export async function bootVms(lab: Lab, state: LabState, vms: readonly LoadedMachine[], containers: readonly MachineReport[]): Promise<MachineReport[]> {
  const rebooted = new Set(containers.filter((r) => r.booted).map((r) => r.name));
  return Promise.all(
    vms.map(async (vm): Promise<MachineReport> => {
      const report: MachineReport = { name: vm.name, stages: [], booted: false, failedUnits: [] };
      if (isRunning(state, vm.name) && !vm.dependsOn.some((d) => rebooted.has(d))) return report;
      await stopMachine(lab, state, vm.name, { hard: true });
      report.bootStartedAt = Date.now();
      const readiness = await startMachine(lab, state, vm.name, { waitForNetwork: false });
      return Object.assign(report, { booted: true, bootMs: readiness.bootMs });
    }),
  );
}
