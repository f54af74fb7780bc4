/**
 * Every exported symbol of every entry point carries a doc comment: the public
 * API is documented where users see it, in their editor.
 */
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const entries = ['src/index.ts', 'src/testing/index.ts', 'src/prometheus/index.ts', 'src/opossum/index.ts', 'src/fetch/index.ts', 'src/redis/index.ts', 'src/http/index.ts'];

describe('public API documentation', () => {
  it('every exported symbol has a doc comment', () => {
    const program = ts.createProgram(
      entries.map((e) => root + e),
      { allowImportingTsExtensions: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2023, strict: true, skipLibCheck: true },
    );
    const checker = program.getTypeChecker();
    const undocumented: string[] = [];
    let count = 0;
    for (const entry of entries) {
      const source = program.getSourceFile(root + entry);
      expect(source, entry).toBeDefined();
      const moduleSymbol = checker.getSymbolAtLocation(source!)!;
      for (const exported of checker.getExportsOfModule(moduleSymbol)) {
        count++;
        const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
        const docs = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
        if (docs === '') undocumented.push(`${entry}: ${exported.getName()}`);
      }
    }
    expect(count).toBeGreaterThan(50);
    expect(undocumented, undocumented.join('\n')).toEqual([]);
  }, 60_000);
});
