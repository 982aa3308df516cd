// Records every module a Node process loads, one resolved URL or file name a line, in the file named by
// PODVNET_MODULE_LOG: `node --import <this file> main.js`. ES modules are seen through a resolve hook
// (module.register), CommonJS ones through Module._resolveFilename. For tests that assert what a
// process does (not) load, e.g. that the node agent never loads @kubernetes/client-node.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

const log = process.env.PODVNET_MODULE_LOG;

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (log) appendFileSync(log, `${r.url}\n`);
  return r;
}

if (isMainThread && log) {
  register(import.meta.url);
  const original = Module._resolveFilename;
  Module._resolveFilename = function (...args) {
    const file = original.apply(this, args);
    appendFileSync(log, `${file.startsWith('/') ? pathToFileURL(file).href : file}\n`);
    return file;
  };
}
