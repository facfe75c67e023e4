import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { packageRoot } from '../../lib/paths.js';
import { definitionSource, loadLab } from '../../lib/stages/load.js';

/** Definition hashes of every stage of the default lab (or of it under another name), as this process computes them. */
async function hashes(name?: string): Promise<string[]> {
  const lab = await loadLab(validateConfig(name ? { ...defaultLab, name } : defaultLab));
  return lab.machines.flatMap((m) => m.stages.map((s) => `${m.name}@${s.name}:${s.definitionHash}`));
}

describe('stage keys', () => {
  it('are the same from the sources (scenario workers) and from the build (the CLI)', async () => {
    // Needs the build (npm test builds first): the compiled loader, run by plain node.
    const script = `import('${path.join(packageRoot, 'dist/lib/stages/load.js')}').then(async ({ loadLab }) => {
      const { validateConfig } = await import('${path.join(packageRoot, 'dist/lib/config/validate.js')}');
      const { defaultLab } = await import('${path.join(packageRoot, 'dist/lib/config/default.js')}');
      const lab = await loadLab(validateConfig(defaultLab));
      console.log(JSON.stringify(lab.machines.flatMap((m) => m.stages.map((s) => m.name + '@' + s.name + ':' + s.definitionHash))));
    })`;
    const built = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
    expect(built).toEqual(await hashes());
  });

  it('do not depend on the lab\'s name, but for a stage whose content names the lab (labs of one config share the cache)', async () => {
    const [own, other] = [await hashes(), await hashes('elsewhere')];
    const changed = own.filter((hash, i) => hash !== other[i]).map((hash) => hash.split(':')[0]);
    expect(changed).toEqual(['web-silicon@site']); // its page says which lab serves it
  });

  it('hash the TypeScript source of built-in code', () => {
    expect(definitionSource(path.join(packageRoot, 'dist', 'lib', 'stages', 'system.js'))).toBe(path.join(packageRoot, 'lib', 'stages', 'system.ts'));
    expect(definitionSource(path.join(packageRoot, 'dist', 'stages', 'gw', 'dns.js'))).toBe(path.join(packageRoot, 'stages', 'gw', 'dns.ts'));
    expect(definitionSource('/elsewhere/stages/solo/ok.mjs')).toBe('/elsewhere/stages/solo/ok.mjs');
  });
});
