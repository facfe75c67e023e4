import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { checkConfig, type ConfigIssue } from '../config/validate.js';
import type { LabConfig, LabConfigInput } from '../config/schema.js';
import type { Problem } from './problem.js';

/**
 * What is wrong with a config, each problem with its line in a YAML or JSON file: the line of the
 * field zod names, or of the field a message of lab's own starts with (`machines.1.address: ...`).
 * A field the file does not have (a default's) is the file's, without a line.
 */
export function configProblems(input: LabConfigInput, file: string | undefined): { config?: LabConfig; problems: Problem[] } {
  const checked = checkConfig(input);
  if (checked.config) return { config: checked.config, problems: [] };
  const lineOf = file && /\.(ya?ml|json)$/.test(file) ? fieldLines(readFileSync(file, 'utf8')) : () => undefined;
  return { problems: checked.issues.map((issue) => ({ file, line: lineOf(issuePath(issue)), message: `invalid config: ${issue.message}` })) };
}

/** The issue's field: zod's path, else the dotted path a message of lab's own starts with. */
function issuePath(issue: ConfigIssue): readonly PropertyKey[] {
  if (issue.path) return issue.path;
  const field = /^([A-Za-z]\w*(?:\.\w+)*): /.exec(issue.message)?.[1];
  return field ? field.split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : part)) : [];
}

/** The line (from 1) of a field of a YAML (or JSON) text: its deepest part the text has; undefined when it has none of it. */
export function fieldLines(text: string): (path: readonly PropertyKey[]) => number | undefined {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter });
  return (path) => {
    let node = document.contents as Node | null;
    let found: Node | undefined;
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
        if (!pair) break;
        found = pair.key as Node;
        node = pair.value as Node | null;
      } else if (isSeq(node) && typeof key === 'number' && node.items[key]) {
        node = node.items[key] as Node;
        found = node;
      } else {
        break;
      }
    }
    return found?.range ? lineCounter.linePos(found.range[0]).line : undefined;
  };
}
