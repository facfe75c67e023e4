// A module resolve hook (node --import, then register): appends the URL of every file module a
// process loads to $LAB_MODULES_OUT. It runs on the loader's own thread: each URL is written at once.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.LAB_MODULES_OUT, `${resolved.url}\n`);
  return resolved;
}
