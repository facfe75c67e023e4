import { execa } from 'execa';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectLabTestPasses, hostTraces, lab, labOk, soloLab, uniqueName } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lab-profiles-'));
const configs: string[] = [];
afterAll(async () => {
  for (const config of configs) await lab(['--config', config, 'destroy']);
});

function configFile(name: string, lines: string[]): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, ...lines, ''].join('\n'));
  return file;
}

describe('the tarball image source (the CoreOS fallback path)', () => {
  it('builds the default lab from a tarball exported by another lab, and passes the default scenarios', async () => {
    const { config: source } = soloLab({ ok: "export default { async run(ctx) { await ctx.writeFile('/etc/ok', 'ok\\n'); } };\n" }, [`name: ${uniqueName('src')}`]);
    configs.push(source);
    await labOk(['--config', source, 'up']);
    const tarball = path.join(dir, 'base.tar');
    expect(await labOk(['--config', source, 'image', 'export', tarball])).toContain(`wrote ${tarball}`);

    const name = uniqueName('tar');
    const config = configFile(name, ['image:', '  source: tarball', `  tarball: ${tarball}`]);
    configs.push(config);
    const doctor = await labOk(['--config', config, 'doctor']);
    expect(doctor).toContain(`image tarball ${tarball}`);
    expect(doctor).not.toMatch(/MISSING/);
    await expectLabTestPasses(['--config', config], path.join(dir, 'reports'));
    const os = await labOk(['--config', config, 'exec', 'gw', '--', 'cat', '/etc/os-release']);
    expect(os).toContain('bookworm');
  });
});

describe('copy storage (no btrfs)', () => {
  it('passes the default scenarios on the default lab', async () => {
    const name = uniqueName('cpy');
    const config = configFile(name, ['storage: { kind: copy }']);
    configs.push(config);
    await expectLabTestPasses(['--config', config], path.join(dir, 'reports-copy'));
    expect(await labOk(['--config', config, 'doctor'])).toContain('storage: copy');
  });
});

describe('a profile the host cannot give is refused before anything is created', () => {
  async function refused(config: string, name: string, message: string): Promise<void> {
    const result = await lab(['--config', config, 'up']);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain(message);
    expect(hostTraces(name)).toEqual([]);
  }

  it('a tarball that does not exist', async () => {
    const name = uniqueName('bad');
    await refused(configFile(name, ['image: { source: tarball, tarball: /nonexistent/root.tar }']), name, 'image.tarball: /nonexistent/root.tar does not exist');
  });

  it('a tarball that is not a root filesystem', async () => {
    const junk = path.join(dir, 'junk');
    mkdirSync(path.join(junk, 'etc'), { recursive: true });
    writeFileSync(path.join(junk, 'etc', 'motd'), 'hello\n');
    await execa('tar', ['-cf', path.join(dir, 'junk.tar'), '-C', junk, '.']);
    const name = uniqueName('bad');
    await refused(configFile(name, ['image:', '  source: tarball', `  tarball: ${path.join(dir, 'junk.tar')}`]), name, 'is not a root filesystem');
  });

  it('pacstrap without pacman, and machinectl without machined', async () => {
    const arch = uniqueName('bad');
    await refused(configFile(arch, ['image: { source: pacstrap, distribution: arch }']), arch, 'image.source pacstrap: pacstrap and pacman not found');
    const machined = uniqueName('bad');
    await refused(configFile(machined, ['runtime: machinectl', 'network: { mode: host }']), machined, "runtime machinectl: PID 1 is '");
  });
});
