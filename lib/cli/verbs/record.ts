import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { json, out, outputPath, type Verb } from '../verb.js';

export default {
  name: 'record',
  help: [
    ['record <machine>', 'a scenario asserting what the machine is now: enabled and active services,', 'listening ports, addresses (a starting point to edit)'],
    ['record --lab', 'the same of every running machine, as one scenario: the lab\'s known-good signature'],
    ['--file <path>', 'also assert this file\'s content (repeatable; with --lab, <machine>:<path>)'],
    ['-o, --output <file>', 'write it there (a .test.ts under scenarios/) instead of printing it'],
  ],
  needsStages: false,
  async run(lab, args, _passthrough, options) {
    const [machine, ...extra] = args;
    if (options.wholeLab ? args.length > 0 : !machine || extra.length > 0) throw new UsageError('usage: lab record <machine> | --lab [--file <path in the machine>]... [--output <file.test.ts>]');
    const target = options.output ? outputPath(options.output) : undefined; // before the machine is asked anything
    const record = await import('../../engine/record.js');
    if (options.wholeLab) {
      const { records, notRecorded } = await record.recordLab(lab, options.files ?? []);
      if (options.json) json({ records, notRecorded });
      else {
        const scenario = record.recordedLabScenario(records, notRecorded, record.scenarioImport(target ? path.dirname(target) : process.cwd()), new Date().toISOString());
        if (!target) out(scenario.trimEnd());
        else {
          writeFileSync(target, scenario);
          out(`wrote ${target}: ${records.length} machines${notRecorded.length ? ` (not recorded: ${notRecorded.join(', ')})` : ''}`);
        }
      }
      return 0;
    }
    const recorded = await record.recordMachine(lab, machine, options.files ?? []);
    if (options.json) {
      json(recorded);
      return 0;
    }
    const scenario = record.recordedScenario(recorded, record.scenarioImport(target ? path.dirname(target) : process.cwd()), new Date().toISOString());
    if (!target) out(scenario.trimEnd());
    else {
      writeFileSync(target, scenario);
      out(`wrote ${target}: ${recorded.services.length} services, ${recorded.ports.length} ports, ${recorded.addresses.length} addresses, ${recorded.files.length} files`);
    }
    return 0;
  },
} satisfies Verb;
