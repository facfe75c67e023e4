// npm run build: nothing when dist/ was built from the same sources (a key of their content);
// otherwise dist/ from nothing (a stage that moved from .ts to .sh leaves no stale .js behind),
// then the shell stages, which are stages as they are and which tsc does not copy, the config's
// JSON Schema, made from the zod schema just built, and the CLI's bundle.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = path.resolve(import.meta.dirname, '..');
// What dist/ is made from: the sources tsc compiles, the shell stages, and how they are built.
const INPUT_DIRS = ['lib', 'stages', 'bench'];
const INPUT_FILES = ['tsconfig.json', 'package.json', 'package-lock.json', 'scripts/build.mjs'];
const keyFile = path.join(root, 'dist', '.build-key');
const key = sourcesKey();
const built = existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key && existsSync(path.join(root, 'schema', 'lab.config.schema.json'));
if (built && !process.argv.includes('--force')) process.exit(0);

rmSync(path.join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
for (const machine of readdirSync(path.join(root, 'stages'))) {
  for (const file of readdirSync(path.join(root, 'stages', machine)).filter((f) => f.endsWith('.sh'))) {
    cpSync(path.join(root, 'stages', machine, file), path.join(root, 'dist', 'stages', machine, file));
  }
}
const { CONFIG_JSON_SCHEMA, configJsonSchemaText } = await import(pathToFileURL(path.join(root, 'dist', 'lib', 'config', 'json-schema.js')).href);
mkdirSync(path.dirname(path.join(root, CONFIG_JSON_SCHEMA)), { recursive: true });
writeFileSync(path.join(root, CONFIG_JSON_SCHEMA), configJsonSchemaText());

// The CLI and the package's entry (what a team's stages import) as one CommonJS script, dist/bundle/lab.cjs,
// which cli/bundle-loader.ts runs with a V8 code cache: Node 20 keeps no compiled code of ES modules, and
// compiling the ~20 chunks of an ES bundle was most of lab exec's own JavaScript. The package's entry,
// dist/bundle/index.js, re-exports the same loaded script: a team's stage and the CLI hold one copy of each
// of lab's modules (its error classes among them). Packages stay in node_modules.
const bundleDir = path.join(root, 'dist', 'bundle');
const bundle = await build({
  entryPoints: [path.join(root, 'dist', 'lib', 'cli', 'bundle.js')],
  outfile: path.join(bundleDir, 'lab.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Each module's import.meta.url is the script's (paths.ts finds dist/<area> from it).
  define: { 'import.meta.url': '__labModuleUrl' },
  banner: { js: 'var __labModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  write: false,
  logLevel: 'warning',
});
mkdirSync(bundleDir, { recursive: true });
writeFileSync(path.join(bundleDir, 'lab.cjs'), routeDynamicImports(bundle.outputFiles[0].text));
// The loader too is CommonJS: required, not imported, it costs no import() and its node:crypto loads lazily
// (an ES import of a built-in evaluates all of its exports: node:crypto's take ~5 ms).
await build({
  entryPoints: [path.join(root, 'dist', 'lib', 'cli', 'bundle-loader.js')],
  outfile: path.join(bundleDir, 'loader.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
const exported = Object.keys(await import(pathToFileURL(path.join(root, 'dist', 'lib', 'index.js')).href));
writeFileSync(
  path.join(bundleDir, 'index.js'),
  [
    "// The package's entry: the exports of the CLI's bundle, loaded once per process (lib/cli/bundle-loader.ts).",
    "import { createRequire } from 'node:module';",
    "import { fileURLToPath } from 'node:url';",
    "const { loadBundle } = createRequire(import.meta.url)('./loader.cjs');",
    `export const { ${exported.join(', ')} } = await loadBundle(fileURLToPath(new URL('lab.cjs', import.meta.url))).packageEntry();`,
    '',
  ].join('\n'),
);
writeFileSync(keyFile, key);

/**
 * Each import() of the script (of a package, a stage, a config file: the bundle's own modules are in it)
 * as a call of __labImport, which the loader passes in: a script compiled from a code cache has no
 * import() of its own in Node 20. Found by TypeScript's parser, so no string or method named import is touched.
 */
function routeDynamicImports(code) {
  const source = ts.createSourceFile('lab.cjs', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const starts = [];
  const visit = (node) => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) starts.push(node.expression.getStart(source));
    ts.forEachChild(node, visit);
  };
  visit(source);
  for (const start of starts.sort((a, b) => b - a)) code = `${code.slice(0, start)}__labImport${code.slice(start + 'import'.length)}`;
  return code;
}

function sourcesKey() {
  const hash = createHash('sha256');
  const files = [...INPUT_FILES, ...INPUT_DIRS.flatMap((dir) => readdirSync(path.join(root, dir), { recursive: true }).map((f) => path.join(dir, f)))];
  for (const file of files.sort()) {
    const full = path.join(root, file);
    if (!existsSync(full) || !statSync(full).isFile()) continue;
    hash.update(`${file}\0`).update(readFileSync(full)).update('\0');
  }
  return hash.digest('hex');
}
