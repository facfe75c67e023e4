import type { LabState } from '../state/state.js';
import type { LoadedMachine } from '../stages/load.js';
import { inDependencyOrder } from './boot-order.js';
import type { Lab } from './lab-types.js';
import type { MachineReport } from './machine-job.js';
import { isRunning, startMachine, stopMachine } from './machines.js';

/**
 * Starts the vms that are not running, and restarts those whose dependencies (gw, their DHCP and
 * boot server, or a vm before them) booted in this run, so that they boot against them afresh. Each
 * after the vms it depends on, the others at once.
 */
export async function bootVms(lab: Lab, state: LabState, vms: readonly LoadedMachine[], containers: readonly MachineReport[]): Promise<MachineReport[]> {
  const rebooted = new Set(containers.filter((r) => r.booted).map((r) => r.name));
  const reports = vms.map((vm): MachineReport => ({ name: vm.name, stages: [], booted: false, failedUnits: [] }));
  const ended = await inDependencyOrder(
    vms.map((vm) => vm.name),
    async (name, after) => {
      const vm = vms.find((m) => m.name === name)!;
      const report = reports.find((r) => r.name === name)!;
      // A container it depends on is not among them (after: undefined), it is up already.
      const vmBooted = (await Promise.all(vm.dependsOn.map(after))).some(Boolean);
      if (isRunning(state, name) && !vmBooted && !vm.dependsOn.some((d) => rebooted.has(d))) return false;
      await stopMachine(lab, state, name, { hard: true });
      report.bootStartedAt = Date.now();
      const readiness = await startMachine(lab, state, name, { waitForNetwork: false });
      Object.assign(report, { booted: true, bootMs: readiness.bootMs });
      return true;
    },
  );
  const failed = ended.find((end) => end.status === 'rejected');
  if (failed) throw failed.reason;
  return reports;
}
