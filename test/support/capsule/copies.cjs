// Builds a node_modules tree with several copies of this pinpool checkout, as npm installs them
// when two dependents' version ranges do not dedupe:
//
//   <root>/node_modules/<name>/index.js                  module.exports = require('pinpool')
//   <root>/node_modules/<name>/node_modules/pinpool/     package.json (its own version), dist/,
//                                                        build/Release/pinpool.node (a copy)
//
// Each copy gets its own file of the addon (a new inode), so the dynamic linker loads it as a
// separate library, as it would two installs. Used by test/host/capsule.test.ts and bench/capsule.mjs.
const {
  copyFileSync,
  cpSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} = require('node:fs');
const { join } = require('node:path');

const checkout = join(__dirname, '..', '..', '..');
exports.checkout = checkout;

/**
 * @param {string} root an empty directory
 * @param {{ name: string, version: string, extraExport?: string }[]} copies `extraExport`: a
 *   function this copy exports and no other does (a synthetic newer API)
 */
exports.makeCopies = function makeCopies(root, copies) {
  const manifest = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8'));
  for (const { name, version, extraExport } of copies) {
    const dependent = join(root, 'node_modules', name);
    const pkg = join(dependent, 'node_modules', 'pinpool');
    mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
    writeFileSync(
      join(dependent, 'package.json'),
      JSON.stringify({ name, version: '1.0.0', main: 'index.js' }),
    );
    writeFileSync(join(dependent, 'index.js'), "module.exports = require('pinpool');\n");
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ ...manifest, version }, null, 2));
    cpSync(join(checkout, 'dist', 'src'), join(pkg, 'dist', 'src'), { recursive: true });
    copyFileSync(
      join(checkout, 'build', 'Release', 'pinpool.node'),
      join(pkg, 'build', 'Release', 'pinpool.node'),
    );
    if (extraExport !== undefined) {
      const api = join(pkg, 'dist', 'src', 'api.js');
      writeFileSync(
        api,
        `${readFileSync(api, 'utf8')}\nexports.${extraExport} = function ${extraExport}() { return '${extraExport} of ${version}'; };\n`,
      );
    }
  }
  // The metrics' optional peer, from this checkout.
  symlinkSync(
    join(checkout, 'node_modules', 'prom-client'),
    join(root, 'node_modules', 'prom-client'),
    'dir',
  );
};
