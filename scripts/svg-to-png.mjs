#!/usr/bin/env node
// An SVG file as a PNG, through resvg (@resvg/resvg-js, a root devDependency: prebuilt binaries, no
// system libraries). Text is drawn with the system's fonts (sans-serif: DejaVu Sans or Liberation
// Sans where installed); a machine with none draws no text, so this says so rather than writing a
// picture without its labels.
//
//   node scripts/svg-to-png.mjs <in.svg> <out.png> [--zoom 2]
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Resvg } from '@resvg/resvg-js';

const FONT_DIRS = ['/usr/share/fonts', '/usr/local/share/fonts', '/System/Library/Fonts', 'C:\\Windows\\Fonts'];

function hasFonts() {
  return FONT_DIRS.some((d) => existsSync(d) && readdirSync(d).length > 0);
}

/** The PNG bytes of `svg` (its text), at `zoom` times its own width and height. */
export function svgToPng(svg, { zoom = 1 } = {}) {
  if (!Number.isFinite(zoom) || zoom <= 0) throw new Error(`Expected a positive number for --zoom but received ${zoom}`);
  if (/<text\b/.test(svg) && !hasFonts()) {
    throw new Error(`svg-to-png: the SVG has text but no fonts were found (looked in ${FONT_DIRS.join(', ')}); install some, e.g. apt-get install fonts-dejavu-core`);
  }
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: zoom },
    font: { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans', defaultFontFamily: 'DejaVu Sans' },
    background: 'white',
  });
  return resvg.render().asPng();
}

function main(argv) {
  const usage = 'Usage: node scripts/svg-to-png.mjs <in.svg> <out.png> [--zoom N]';
  const z = argv.indexOf('--zoom');
  const zoom = z >= 0 ? Number(argv[z + 1]) : 1;
  const files = argv.filter((a, i) => !(z >= 0 && (i === z || i === z + 1)));
  if (files.length !== 2 || files.some((f) => f.startsWith('-'))) {
    console.error(`svg-to-png: expected an input SVG and an output PNG but received ${files.length ? files.map((f) => `'${f}'`).join(', ') : 'nothing'}\n${usage}`);
    return 2;
  }
  const [input, output] = files.map((f) => resolve(f));
  if (!existsSync(input)) {
    console.error(`svg-to-png: ${input} does not exist\n${usage}`);
    return 2;
  }
  const png = svgToPng(readFileSync(input, 'utf8'), { zoom });
  writeFileSync(output, png);
  console.log(`${output}: ${png.length.toLocaleString('en')} bytes`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
