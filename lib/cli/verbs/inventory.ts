import { readFileSync } from 'node:fs';
import { UsageError } from '../../errors.js';
import { json, out, type Verb } from '../verb.js';

export default {
  name: 'inventory',
  help: [
    ['inventory', 'the lab as an Ansible inventory (every machine, its groups, addresses, MACs,', 'ansible_host as the controller reaches it)'],
    ['--format <kind>', 'yaml (default), ini, json (as ansible-inventory --list), or ssh (an SSH config', 'with ProxyJump through the router; ssh -F <file> <machine>)'],
  ],
  needsStages: false,
  async run(lab, args, _passthrough, options) {
    if (args.length > 0) throw new UsageError('usage: lab inventory [--format yaml|ini|json|ssh]');
    const format = options.format ?? 'yaml';
    const formats = ['yaml', 'ini', 'json', 'ssh'];
    if (!formats.includes(format)) throw new UsageError(`--format: unknown format '${format}' (valid: ${formats.join(', ')})`);
    const [controller, inventory, { readState }] = await Promise.all([import('../../engine/controller.js'), import('../../controller/inventory.js'), import('../../state/state.js')]);
    const state = readState(lab.dirs.stateFile);
    if (format === 'ssh') {
      const files = await controller.writeControllerFiles(lab, state);
      out(readFileSync(files.sshConfig, 'utf8').trimEnd());
      return 0;
    }
    const found = await controller.labInventory(lab, state);
    if (format === 'json') json(inventory.inventoryJson(found));
    else if (format === 'ini') out(inventory.inventoryIni(found).trimEnd());
    else out((await import('yaml')).stringify(inventory.inventoryYamlObject(found)).trimEnd());
    return 0;
  },
} satisfies Verb;
