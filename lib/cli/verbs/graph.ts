import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { out, outputPath, type Verb } from '../verb.js';

export default {
  name: 'graph',
  help: [
    ['graph', 'the lab\'s topology (machines, networks, addresses, DNS/DHCP, routers) as Mermaid'],
    ['-o, --output <file>', 'write it as .svg, .html (self-contained) or .mmd instead'],
  ],
  needsStages: false,
  async run(lab, args, _passthrough, options) {
    if (args.length > 0) throw new UsageError('usage: lab graph [--output <file.svg|file.html|file.mmd>]');
    const graph = await import('../../report/graph.js');
    const file = options.output;
    if (!file) {
      out(graph.toMermaid(lab.topology).trimEnd());
      return 0;
    }
    const kind = path.extname(file);
    const render = { '.svg': () => graph.toSvg(lab.topology), '.html': () => graph.toHtmlPage(`lab ${lab.config.name}: topology`, lab.topology), '.mmd': () => graph.toMermaid(lab.topology) }[kind];
    if (!render) throw new UsageError(`--output ${file}: use a .svg, .html or .mmd file`);
    writeFileSync(outputPath(file), render());
    out(`wrote ${file}`);
    return 0;
  },
} satisfies Verb;
