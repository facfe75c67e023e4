import ts from 'typescript';
import fs from 'node:fs';
const dir = process.argv[2];
const files = fs.readdirSync(dir, { recursive: true }).filter(f => f.endsWith('.ts')).map(f => dir + '/' + f);
const cfg = ts.findConfigFile(dir, ts.sys.fileExists);
const parsed = ts.getParsedCommandLineOfConfigFile(cfg, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
let t = performance.now();
const program = ts.createProgram(files, { ...parsed.options, noEmit: true, declaration: false });
console.log('program', performance.now() - t);
t = performance.now();
if (process.argv[3] === 'all') console.log(ts.getPreEmitDiagnostics(program).length);
else { let n = program.getOptionsDiagnostics().length + program.getGlobalDiagnostics().length; for (const sf of program.getSourceFiles()) { if (sf.isDeclarationFile || sf.fileName.startsWith('/work/main/lib/')) continue; n += program.getSyntacticDiagnostics(sf).length + program.getSemanticDiagnostics(sf).length; } console.log(n); }
console.log('diag', performance.now() - t);
