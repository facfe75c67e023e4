/**
 * What must still happen when lab is interrupted (SIGINT, SIGTERM, SIGHUP) in the middle of a
 * command that changed the lab for a while: machines frozen for a checkpoint are thawed, a bisect
 * puts the lab back. cli/main.ts runs these after ending the running commands, before it exits.
 */
const cleanups = new Set<() => Promise<void>>();

/** Registers a cleanup; the returned function unregisters it (call it once the work is done). */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Runs the registered cleanups, newest first, each to its end or its error; returns how many ran. */
export async function runInterruptCleanups(): Promise<number> {
  const all = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of all) await cleanup().catch((error: Error) => process.stderr.write(`lab: cleanup after the interruption failed: ${error.message}\n`));
  return all.length;
}
