/**
 * The CLI's bundle (scripts/build.mjs, run by cli/bundle-loader.ts): the CLI's main and the package's
 * entry (what a team's stages import) in one script, so that a command holds one copy of lab's modules.
 * The package's entry is loaded when asked for: a command that loads no stage of a team's does not run it.
 */
export { main, reportError } from './main.js';
export const packageEntry = () => import('../index.js');
