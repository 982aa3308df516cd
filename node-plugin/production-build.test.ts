import test from 'ava';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * What ships is what tsconfig.build.json includes. Its `exclude` list (tests, test kits in testing/
 * folders, emulators) only keeps files from being compiled *on their own*: TypeScript still compiles
 * an excluded file that production code imports, and would ship it. This test is what makes a
 * production import of a kit fail: it resolves the build's imports and names any file they pull in that
 * the build's own list leaves out.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Files the program of `configPath` compiles beyond its own file list (declaration files aside). */
function pulledInExcluded(configPath: string): string[] {
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(configPath));
  const listed = new Set(parsed.fileNames.map((f) => path.resolve(f)));
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
  return program
    .getSourceFiles()
    .map((f) => path.resolve(f.fileName))
    .filter((f) => !f.endsWith('.d.ts') && !f.includes(`${path.sep}node_modules${path.sep}`) && !listed.has(f))
    .map((f) => path.relative(path.dirname(configPath), f))
    .sort();
}

test('the production build compiles no test, kit or emulator: nothing it ships imports one', (t) => {
  t.timeout(120_000);
  t.deepEqual(pulledInExcluded(path.join(ROOT, 'tsconfig.build.json')), []);
});
