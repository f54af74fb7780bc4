/**
 * `npm run demo -- [<name>] [args...]`: runs one incident demo (default
 * `auth-cascade`). `list` lists the demos, `--help` says how to run them,
 * `<name> --help` gives one demo's options. An unknown name lists the demos
 * and exits with status 2.
 */
import { DEFAULT_DEMO, DEMOS, demoHelpLines, helpLines, listLines } from './demos.ts';

const args = process.argv.slice(2);
const first = args[0];
const print = (lines: readonly string[]): void => console.log(lines.join('\n'));

if (first === 'list' || first === '--list') {
  print(['Demos (run one with: npm run demo -- <name>; options: npm run demo -- <name> --help):', ...listLines()]);
} else if (first === '--help' || first === '-h' || first === 'help') {
  print(helpLines());
} else {
  const [name, ...argv] = first === undefined || first.startsWith('--') ? [DEFAULT_DEMO, ...args] : args;
  const demo = DEMOS[name!];
  if (demo === undefined) {
    print([`unknown demo "${name}". The demos:`, ...listLines(), '', 'run one with: npm run demo -- <name>   (npm run demo -- --help says more)']);
    process.exitCode = 2;
  } else if (argv.includes('--help') || argv.includes('-h')) {
    print(demoHelpLines(name!));
  } else {
    const started = performance.now();
    const module = await demo.load();
    await module.run({ argv });
    console.log(`\n${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}
