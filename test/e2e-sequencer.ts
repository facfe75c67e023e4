import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Two end-to-end files run side by side (the cores are mostly idle while machines boot, packages
 * install and Ansible talks SSH). The longest start first, so the two lanes end together:
 * `test/e2e/durations.json` holds each file's seconds from an earlier full run; a file not in it
 * goes last.
 */
const durations = JSON.parse(readFileSync(path.join(import.meta.dirname, 'e2e', 'durations.json'), 'utf8')) as Record<string, number>;

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const seconds = (file: TestSpecification) => durations[path.basename(file.moduleId)] ?? 0;
    return [...files].sort((a, b) => seconds(b) - seconds(a) || a.moduleId.localeCompare(b.moduleId));
  }
}
