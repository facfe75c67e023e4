/**
 * What must still happen when lab is interrupted (SIGINT, SIGTERM, SIGHUP) in the middle of a
 * command that changed the lab for a while: machines frozen for a checkpoint are thawed, a bisect
 * puts the lab back. cli/main.ts runs these after ending the running commands, before it exits.
 */
const cleanups = new Set<() => Promise<void>>();

/** 'ending': commands are being ended and none may start; 'cleaning': the cleanups run theirs. */
let phase: 'running' | 'ending' | 'cleaning' = 'running';

export function interruptionPhase(): typeof phase {
  return phase;
}

/** From now on no command starts, until the cleanups run (lab is being interrupted). */
export function beginInterruption(): void {
  phase = 'ending';
}

/** True once lab is being interrupted: code that would clean up leaves it to the registered cleanups. */
export function interrupted(): boolean {
  return phase !== 'running';
}

/** Registers a cleanup; the returned function unregisters it (call it once the work is done). */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Runs the registered cleanups, newest first, each to its end or its error; returns how many ran. */
export async function runInterruptCleanups(): Promise<number> {
  phase = 'cleaning';
  const all = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of all) await cleanup().catch((error: Error) => process.stderr.write(`lab: cleanup after the interruption failed: ${error.message}\n`));
  return all.length;
}
