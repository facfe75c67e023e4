import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The installed package's root (this file is dist/lib/paths.js once built). */
export const packageRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
export const builtinStagesDir = path.join(packageRoot, 'dist', 'stages');
export const builtinFixturesDir = path.join(packageRoot, 'fixtures');
