import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');

function tsFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

describe('telemetry boundary', () => {
  it('src/telemetry/appinsights.ts is the only module that loads the Application Insights SDK', () => {
    const importers = ['src', 'functions', 'stack', 'scripts']
      .flatMap((d) => tsFiles(path.join(root, d)))
      .filter((f) =>
        /(from\s+|require\(\s*|import\(\s*)['"](applicationinsights|@azure\/monitor-opentelemetry[^'"]*)['"]/.test(
          fs.readFileSync(f, 'utf8'),
        ),
      )
      .map((f) => path.relative(root, f).split(path.sep).join('/'));
    expect(importers).toEqual(['src/telemetry/appinsights.ts']);
  });

  it('src/telemetry/index.ts does not import the SDK wrapper at load time', () => {
    const src = fs.readFileSync(path.join(root, 'src/telemetry/index.ts'), 'utf8');
    expect(src).not.toMatch(/^import[^;]*['"]\.\/appinsights['"]/m);
  });
});
