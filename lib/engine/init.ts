import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { labConfigSchema } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { PACKAGE_NAME, packageRoot } from '../paths.js';
import { treeEntries } from '../stages/content.js';
import { fillTemplate } from '../stages/context.js';

/** A new team lab's files: templates/init/, each `{{name}}` the lab's name. */
const TEMPLATE = path.join(packageRoot, 'templates', 'init');
/** npm leaves a package's .gitignore out of it: the template's is shipped as `gitignore`. */
const SHIPPED_AS: Record<string, string> = { gitignore: '.gitignore' };
/** What a lab's name may be when none is given and the directory's cannot be one. */
const FALLBACK_NAME = 'team';

export interface InitReport {
  dir: string;
  name: string;
  /** Relative to `dir`, in the order written. */
  files: string[];
}

/**
 * `lab init [dir]`: a new team lab from nothing, that `lab validate` passes at once and
 * `lab up && lab test` bring up and test: package.json (lab as a dev dependency, TypeScript and
 * Node's types for the scenarios' type check), lab.config.yaml naming the config's JSON Schema, one
 * stage and its fixture, one scenario, tsconfig.json, .gitignore. A directory that is not empty is
 * refused (exit 2), before anything is written.
 */
export function initLab(dir: string, options: { name?: string } = {}): InitReport {
  const target = path.resolve(dir);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new UsageError(`${dir} is not a directory`);
    const present = readdirSync(target);
    if (present.length > 0) throw new UsageError(`the directory ${dir} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', ...' : ''})`, 'name a new or empty directory: lab init <dir>');
  }
  const name = options.name ?? nameFor(target);
  const valid = labConfigSchema.shape.name.safeParse(name);
  if (!valid.success) throw new UsageError(`--name ${name}: ${valid.error.issues[0]!.message}`);

  const files: string[] = [];
  const write = (file: string, content: string, mode = 0o644) => {
    mkdirSync(path.dirname(path.join(target, file)), { recursive: true });
    writeFileSync(path.join(target, file), content);
    chmodSync(path.join(target, file), mode);
    files.push(file);
  };
  write('package.json', `${JSON.stringify(packageJson(name), null, 2)}\n`);
  for (const { relative, full, entry } of treeEntries(TEMPLATE)) {
    if (!entry.isFile()) continue;
    const file = SHIPPED_AS[relative] ?? relative;
    write(file, fillTemplate(readFileSync(full, 'utf8'), { name }, relative), statSync(full).mode & 0o777);
  }
  return { dir: target, name, files };
}

/** The directory's name as a lab's (lowercase letters, digits, dashes; 12 at most), else FALLBACK_NAME. */
function nameFor(dir: string): string {
  const name = path.basename(dir).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 12).replace(/-+$/, '');
  return labConfigSchema.shape.name.safeParse(name).success ? name : FALLBACK_NAME;
}

/** The team's package.json: lab, and the tools its scenarios are type-checked with, at the versions lab itself uses. */
function packageJson(name: string): unknown {
  const own = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies?: Record<string, string> };
  const versionOf = (dependency: string) => own.dependencies[dependency] ?? own.devDependencies?.[dependency];
  return {
    name,
    private: true,
    type: 'module',
    scripts: { validate: 'lab validate', typecheck: 'tsc', up: 'lab up', test: 'lab test' },
    devDependencies: { [PACKAGE_NAME]: `^${own.version}`, typescript: versionOf('typescript'), '@types/node': versionOf('@types/node') },
  };
}
