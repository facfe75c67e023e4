/**
 * The package's types, as a team's scenarios and stages see them: `sadm-lab` and `sadm-lab/scenario`
 * resolved through the package's exports (its .d.ts files in dist/), vitest's `expect` with lab's
 * matchers, all under `strict`. `@ts-expect-error` lines prove the types are not `any`. And the
 * config's JSON Schema that the package ships.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_JSON_SCHEMA, configJsonSchema, configJsonSchemaText } from '../../lib/config/json-schema.js';
import { formatProblem } from '../../lib/validate/problem.js';
import { scenarioTypeProblems } from '../../lib/validate/scenarios.js';
import { linkInstalledLab } from './installed.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const team = mkdtempSync(path.join(tmpdir(), 'lab-types-'));
afterAll(() => rmSync(team, { recursive: true, force: true }));

/** A team's repository with lab installed. */
function teamLab(files: Record<string, string>): string[] {
  linkInstalledLab(team);
  writeFileSync(path.join(team, 'package.json'), JSON.stringify({ name: 'team', private: true, type: 'module' }));
  writeFileSync(path.join(team, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, skipLibCheck: true, types: ['node'] } }));
  return Object.entries(files).map(([name, content]) => {
    mkdirSync(path.dirname(path.join(team, name)), { recursive: true });
    writeFileSync(path.join(team, name), content);
    return path.join(team, name);
  });
}

const SCENARIO = `
import { expect, it } from 'vitest';
import { type CurlReply, type LabMachine, Machine, tapChecks, useLab } from 'sadm-lab/scenario';

const lab = await useLab({ restore: 'web@site' });
const web: LabMachine = lab.machine('web');
const machine: Machine = web;
it('types every verb', async () => {
  const out: string = await web.succeed('true', { timeout: 1000 });
  const failed: string = await machine.fail(['false']);
  const { exitCode, stdout }: { exitCode: number; stdout: string } = await web.execute('true');
  const reply: CurlReply = await web.curl('http://web/', { expectStatus: 200 });
  const status: number = reply.status;
  await web.waitForUnit('nginx', 5000);
  await web.waitForOpenPort(80);
  await web.impair({ delayMs: 10 });
  const address: string = await web.resolve('gw.prolo');
  await expect(web).toHaveServiceEnabledAndActive('nginx');
  await expect(web).not.toListenOn(53, 'udp');
  await expect(web).toHaveFile('/etc/hostname');
  void [out, failed, exitCode, stdout, status, address];
  // @ts-expect-error succeed resolves to the command's output, a string
  const wrong: number = await web.succeed('true');
  // @ts-expect-error a command is a string or an argv
  await web.succeed(42);
  // @ts-expect-error an impairment's fields are known
  await web.impair({ delay: 10 });
  // @ts-expect-error lab's matchers are typed: a port is a number
  await expect(web).toListenOn('80');
  // @ts-expect-error unknown machines are found at run time, unknown verbs at compile time
  await web.reboot2();
  void wrong;
});
await tapChecks(lab, 'web', 'checks/web.sh');
`;

const STAGE = `
import { defineConfig, defineStage, type StageContext } from 'sadm-lab';

export default defineStage({
  packages: ['nginx-light'],
  fixtures: ['site/index.html'],
  inputs: (lab) => ({ dns: lab.dnsAddress, domain: lab.topology.domain }),
  async run(ctx: StageContext) {
    const page: string = await ctx.fixture('site/index.html');
    await ctx.writeFile('/var/www/html/index.html', page, { mode: 0o644 });
    const { exitCode }: { exitCode: number } = await ctx.exec(['true']);
    void exitCode;
    // @ts-expect-error exec takes an argv, not a shell line
    await ctx.exec('true');
  },
  async check(machine) {
    await machine.waitForUnit('nginx');
  },
});

export const config = defineConfig({ name: 'team', machines: [{ name: 'web', address: 'dhcp', stages: ['site'] }] });
// @ts-expect-error a machine's kind is container or vm
defineConfig({ machines: [{ name: 'web', kind: 'box' }] });
`;

describe("the package's types", () => {
  it('type a scenario and a stage under tsc --strict, through the exports of sadm-lab and sadm-lab/scenario', async () => {
    const files = teamLab({ 'scenarios/typed.test.ts': SCENARIO, 'stages/web/site.ts': STAGE });
    const problems = await scenarioTypeProblems(files, path.join(team, 'scenarios'));
    expect(problems.map((p) => formatProblem(p, team))).toEqual([]);
  }, 60_000);
});

describe("the config's JSON Schema", () => {
  it('is shipped, equal to what the zod schema makes now (npm run build writes it)', () => {
    expect(readFileSync(path.join(repoRoot, CONFIG_JSON_SCHEMA), 'utf8')).toBe(configJsonSchemaText());
    const packageJson = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { files: string[] };
    expect(packageJson.files).toContain(path.dirname(CONFIG_JSON_SCHEMA));
  });

  it('describes a file as lab reads it: merged over the default lab, so even machines may be left out, and no unknown key', () => {
    const schema = configJsonSchema() as { required?: string[]; additionalProperties: boolean; properties: { machines: { items: { properties: Record<string, { enum?: string[] }>; required: string[] } } } };
    expect(schema.required).toBeUndefined();
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.machines.items.required).toEqual(['name']);
    expect(schema.properties.machines.items.properties.kind?.enum).toEqual(['container', 'vm', 'diskless']);
  });
});
