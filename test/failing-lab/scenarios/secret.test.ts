import { it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
it('prints secrets in its failure', async () => {
  await lab.machine('solo').succeed('echo "password=hunter2-do-not-leak"; echo "-----BEGIN PRIVATE KEY-----"; echo "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"; echo "-----END PRIVATE KEY-----"; exit 4');
});
