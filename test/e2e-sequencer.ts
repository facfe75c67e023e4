import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Two files run side by side (the cores are mostly idle while machines boot, packages install and
 * Ansible talks SSH). The longest end-to-end files start first, so the two lanes end together:
 * `test/e2e/durations.json` holds each file's seconds from an earlier full run. The unit files
 * (seconds each) go last, into whichever lane frees first, and then an end-to-end file not in it.
 */
const durations = JSON.parse(readFileSync(path.join(import.meta.dirname, 'e2e', 'durations.json'), 'utf8')) as Record<string, number>;

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const e2e = path.join(import.meta.dirname, 'e2e') + path.sep;
    const seconds = (file: TestSpecification) => (file.moduleId.startsWith(e2e) ? (durations[path.basename(file.moduleId)] ?? 0.5) : 0);
    return [...files].sort((a, b) => seconds(b) - seconds(a) || a.moduleId.localeCompare(b.moduleId));
  }
}
