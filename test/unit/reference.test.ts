/**
 * docs/scenario-api.md against the code: every export of `sadm-lab` and `sadm-lab/scenario`, the
 * types their verbs hand back, and lab's matchers are sections there, each public member of a class
 * or interface a heading with its signature as the code declares it (parameter names, `?` for an
 * optional one, the return type). A verb added, renamed, given another parameter or return type, or
 * removed fails this test until the reference says so.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const REFERENCE = path.join(repoRoot, 'docs', 'scenario-api.md');
const ENTRIES = ['lib/index.ts', 'lib/scenario/index.ts'].map((f) => path.join(repoRoot, f));
/** Not exported, but what the exported verbs hand back or stages read (ctx.lab.topology, execute's result). */
const REACHED = { 'lib/exec.ts': ['RunResult'], 'lib/config/topology.ts': ['Topology', 'TopologyNetwork', 'TopologyInterface', 'TopologyMachine'] };
/** Where lab adds its matchers to vitest's expect. */
const MATCHERS = 'lib/scenario/harness.ts';

const text = (node: ts.Node | undefined) => node?.getText().replace(/\s+/g, ' ');
const isHidden = (node: ts.Node) => (ts.getCombinedModifierFlags(node as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) !== 0;

function parameters(node: ts.SignatureDeclaration): string {
  return node.parameters.map((p) => `${p.dotDotDotToken ? '...' : ''}${p.name.getText()}${p.questionToken || p.initializer ? '?' : ''}`).join(', ');
}

/** A member as the reference heads it: `name(a, b?): Return` or `name?: Type`. */
function signature(node: ts.Node, checker: ts.TypeChecker): string | undefined {
  const inferred = (n: ts.SignatureDeclaration) => text(n.type) ?? checker.typeToString(checker.getReturnTypeOfSignature(checker.getSignatureFromDeclaration(n)!));
  if (ts.isMethodDeclaration(node) || ts.isMethodSignature(node) || ts.isFunctionDeclaration(node)) {
    return `${node.name!.getText()}${node.questionToken ? '?' : ''}(${parameters(node)}): ${inferred(node)}`;
  }
  if (ts.isGetAccessorDeclaration(node)) return `${node.name.getText()}: ${inferred(node)}`;
  if (ts.isPropertyDeclaration(node) || ts.isPropertySignature(node) || ts.isParameter(node)) {
    return `${node.name.getText()}${node.questionToken ? '?' : ''}: ${text(node.type) ?? checker.typeToString(checker.getTypeAtLocation(node))}`;
  }
  return undefined;
}

/** The public members of a class (its parameter properties included) or of an interface. */
function members(declaration: ts.Declaration, checker: ts.TypeChecker): string[] {
  if (ts.isClassDeclaration(declaration)) {
    const constructor = declaration.members.find(ts.isConstructorDeclaration);
    const properties = constructor?.parameters.filter((p) => ts.getCombinedModifierFlags(p) & (ts.ModifierFlags.Public | ts.ModifierFlags.Readonly)) ?? [];
    return [...properties, ...declaration.members].filter((m) => !isHidden(m)).flatMap((m) => signature(m, checker) ?? []);
  }
  if (ts.isInterfaceDeclaration(declaration)) return declaration.members.flatMap((m) => signature(m, checker) ?? []);
  return [];
}

/** What the code says the reference must have: its sections, each with its headings. */
function codeSections(): Map<string, string[]> {
  const options = ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(repoRoot, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, repoRoot).options;
  const reached = Object.keys(REACHED).map((f) => path.join(repoRoot, f));
  const program = ts.createProgram([...ENTRIES, ...reached, path.join(repoRoot, MATCHERS)], { ...options, noEmit: true });
  const checker = program.getTypeChecker();
  const sections = new Map<string, string[]>([['Functions', []]]);
  const add = (name: string, declaration: ts.Declaration) => {
    if (ts.isFunctionDeclaration(declaration)) sections.get('Functions')!.push(signature(declaration, checker)!);
    else sections.set(name, members(declaration, checker));
  };
  for (const entry of ENTRIES) {
    for (const exported of checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      add(exported.name, symbol.declarations![0]!);
    }
  }
  for (const [file, names] of Object.entries(REACHED)) {
    const source = program.getSourceFile(path.join(repoRoot, file))!;
    for (const name of names) add(name, source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name)!);
  }
  const vitest = program.getSourceFile(path.join(repoRoot, MATCHERS))!.statements.filter((s): s is ts.ModuleDeclaration => ts.isModuleDeclaration(s) && s.name.getText() === "'vitest'");
  const matchers = vitest.flatMap((m) => (m.body as ts.ModuleBlock).statements).find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'Matchers')!;
  sections.set('Matchers', members(matchers, checker));
  return sections;
}

/** The reference's `## Section` titles, each with its "### `signature`" headings. */
function documentedSections(markdown: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of markdown.split('\n')) {
    const section = /^## (\S+)$/.exec(line);
    if (section) sections.set(section[1]!, (current = []));
    const heading = /^### `(.+)`$/.exec(line);
    if (heading) current?.push(heading[1]!);
  }
  return sections;
}

describe('the scenario API reference (docs/scenario-api.md)', () => {
  it('documents every export, and every public verb and field with its signature as the code declares it, and nothing else', () => {
    const code = codeSections();
    const doc = documentedSections(readFileSync(REFERENCE, 'utf8'));
    const drift: string[] = [];
    for (const [section, headings] of code) {
      const documented = doc.get(section);
      if (!documented) {
        drift.push(`## ${section}: not in the reference (${headings.length ? headings.join('; ') : 'a type'})`);
        continue;
      }
      for (const heading of headings.filter((h) => !documented.includes(h))) drift.push(`## ${section}: undocumented: ${heading}`);
      for (const heading of documented.filter((h) => !headings.includes(h))) drift.push(`## ${section}: documented, but the code has no ${heading}`);
    }
    for (const section of [...doc.keys()].filter((s) => !code.has(s))) drift.push(`## ${section}: documented, but neither exported nor reached`);
    expect(drift).toEqual([]);
  }, 60_000);
});
