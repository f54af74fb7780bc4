/**
 * The API reports of the published types: one per entry point of package.json
 * `exports`, made by API Extractor from the built `.d.ts` files and committed as
 * etc/api/<name>.api.md.
 *
 *   npm run api:check    build, then fail if a report differs from the build (CI runs this)
 *   npm run api:update   build, then rewrite the reports; commit them with the change
 *
 * Run directly (`node scripts/api-report.ts [--local]`) it expects a fresh build in dist/.
 * The shared settings are in etc/api/api-extractor.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig, ExtractorLogLevel, type ExtractorMessage } from '@microsoft/api-extractor';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const local = process.argv.includes('--local');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { import?: { types?: string } }>;
};
const configPath = join(root, 'etc/api/api-extractor.json');
const base = ExtractorConfig.loadFile(configPath);

const entries = Object.entries(pkg.exports).flatMap(([subpath, target]) => {
  const types = typeof target === 'object' ? target.import?.types : undefined;
  if (types === undefined) return []; // ./package.json
  const name = subpath === '.' ? pkg.name : `${pkg.name}-${subpath.slice(2).replaceAll('/', '-')}`;
  return [{ specifier: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, name, types: join(root, types) }];
});

// API Extractor knows one entry point at a time, so a type that `breakwater/prometheus`
// takes from `breakwater` (an `Event`, say) looks to it like a forgotten export. Such a
// type is fine: users import it from `breakwater`. So are these helper aliases, which
// public signatures use but no user needs to name (the reports show their definitions).
// Any other forgotten export is an error.
const helperAliases = new Set(['AnyPolicy', 'AnyListener']);
const mainTypes = entries.find((e) => e.name === pkg.name)!.types;
const exportedByMain = new Set<string>();
{
  const program = ts.createProgram([mainTypes], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true });
  const checker = program.getTypeChecker();
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(mainTypes)!)!)) {
    exportedByMain.add(symbol.name);
  }
}

const failures: string[] = [];
const started = performance.now();
for (const entry of entries) {
  const configObject = structuredClone(base);
  configObject.mainEntryPointFilePath = entry.types;
  configObject.compiler = { overrideTsconfig: { ...configObject.compiler!.overrideTsconfig, files: [entry.types] } };
  configObject.apiReport = { ...configObject.apiReport!, reportFileName: entry.name };
  const config = ExtractorConfig.prepare({ configObject, configObjectFullPath: configPath, packageJsonFullPath: join(root, 'package.json') });
  const result = Extractor.invoke(config, {
    localBuild: local,
    printApiReportDiff: !local,
    messageCallback(message: ExtractorMessage) {
      if (message.messageId === 'console-preamble' || message.messageId === 'console-compiler-version-notice') {
        message.logLevel = ExtractorLogLevel.None;
      }
      // API Extractor renames a type that shadows a global: `Event` becomes `Event_2`.
      const forgotten = message.messageId === 'ae-forgotten-export' && /"(.+?)(_\d+)?"/.exec(message.text)?.[1];
      if (forgotten && (helperAliases.has(forgotten) || (entry.types !== mainTypes && exportedByMain.has(forgotten)))) {
        message.logLevel = ExtractorLogLevel.None;
      }
    },
  });
  const report = `etc/api/${entry.name}.api.md`;
  if (result.errorCount > 0) {
    failures.push(
      `${entry.specifier}: ${result.errorCount} error(s) in the published types (above). A forgotten export is a type ` +
        'a public signature uses but no entry point exports: export it, or mark what uses it @internal.',
    );
  } else if (result.apiReportChanged && !local) {
    failures.push(
      `${entry.specifier}: the public API differs from ${report} (diff above). ` +
        'If the change is intended, run `npm run api:update` and commit etc/api/ with it (README, Develop).',
    );
  } else console.log(`${entry.specifier}: ${result.apiReportChanged ? `updated ${report}` : `${report} is up to date`}`);
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (failures.length > 0) {
  console.error(`\nAPI check failed (${seconds} s):\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  process.exit(1);
}
console.log(`API reports ${local ? 'written' : 'checked'} for ${entries.length} entry points (${seconds} s)`);
