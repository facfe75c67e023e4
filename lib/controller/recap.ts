/** What Ansible's default output says of a run: PLAY RECAP per host, and the tasks that failed where. */
export interface HostRecap {
  host: string;
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
  skipped: number;
}

export interface FailedTask {
  host: string;
  task: string;
  message: string;
}

export interface AnsibleOutcome {
  recap: HostRecap[];
  failures: FailedTask[];
}

const RECAP_LINE = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)(?:\s+skipped=(\d+))?/;
const TASK_LINE = /^(?:TASK|RUNNING HANDLER) \[(.+?)\] \**$/;
const FAILED_LINE = /^(?:fatal|failed): \[([^\]]+)\](?: \(item=.*?\))?: (FAILED|UNREACHABLE)! => (.*)$/;

/** The message of a failure's JSON (`msg`, else stderr), else the text as it is, on one line. */
function messageOf(text: string): string {
  try {
    const json = JSON.parse(text) as { msg?: unknown; stderr?: unknown };
    const message = typeof json.msg === 'string' && json.msg ? json.msg : typeof json.stderr === 'string' ? json.stderr : text;
    return message.split('\n')[0]!.slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}

export function parseAnsibleOutput(output: string): AnsibleOutcome {
  const lines = output.split('\n');
  const recap: HostRecap[] = [];
  const failures: FailedTask[] = [];
  let task = '';
  let inRecap = false;
  for (const [index, raw] of lines.entries()) {
    const line = raw.trimEnd();
    if (line.startsWith('PLAY RECAP')) inRecap = true;
    const taskMatch = TASK_LINE.exec(line);
    if (taskMatch) task = taskMatch[1]!;
    const failed = FAILED_LINE.exec(line);
    // A failure followed by "...ignoring" is one the play accepted (ignore_errors).
    if (failed && !lines[index + 1]?.trim().startsWith('...ignoring')) {
      failures.push({ host: failed[1]!, task: failed[2] === 'UNREACHABLE' ? `${task} (unreachable)` : task, message: messageOf(failed[3]!) });
    }
    const recapMatch = inRecap ? RECAP_LINE.exec(line) : null;
    if (recapMatch) {
      const [, host, ok, changed, unreachable, failedCount, skipped] = recapMatch;
      recap.push({ host: host!, ok: Number(ok), changed: Number(changed), unreachable: Number(unreachable), failed: Number(failedCount), skipped: Number(skipped ?? 0) });
    }
  }
  return { recap, failures };
}

/** One line per failed task: "web: nginx : install (No package matching 'ngnix')". */
export function describeFailures(outcome: AnsibleOutcome): string {
  if (outcome.failures.length > 0) return outcome.failures.map((f) => `${f.host}: ${f.task || '(no task)'}: ${f.message}`).join('\n');
  const bad = outcome.recap.filter((r) => r.failed > 0 || r.unreachable > 0);
  return bad.map((r) => `${r.host}: failed=${r.failed} unreachable=${r.unreachable}`).join('\n');
}
