#!/usr/bin/env node
// Renders the chart's values table (Markdown) from values.yaml: every key with its type, default and
// the comment above it, which must start with the key's dotted path (helm best practice: "document every
// value with a comment that starts with its name"). An undocumented key is an error, so this doubles as
// a lint. A key whose children carry no comments of their own (resources, affinity, ...) is one row.
//   node charts/imdsgate/values-table.mjs            → print the table
//   node charts/imdsgate/values-table.mjs --check    → exit 1 on an undocumented key
//   node charts/imdsgate/values-table.mjs --write docs/install-eks.md README.md
//        → replace the text between <!-- values-table:start --> and <!-- values-table:end -->
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, parseDocument } from 'yaml';

const VALUES = fileURLToPath(new URL('./values.yaml', import.meta.url));

/** Comment lines above a pair, without '#', joined into one paragraph. */
function commentOf(pair, fallback) {
  const raw = pair.key?.commentBefore ?? fallback ?? '';
  // A comment block separated by a blank line belongs to the file or section, not to the key.
  return (raw.split(/\n\s*\n/).pop() ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

function hasOwnComments(map) {
  return (map.commentBefore ?? '').trim() !== '' || map.items.some((p) => (p.key?.commentBefore ?? '').trim() !== '');
}

function typeOf(v) {
  if (Array.isArray(v)) return 'list';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** rows: { key, type, default, description }; problems: undocumented or misdocumented keys. */
export function valuesRows(text = readFileSync(VALUES, 'utf8')) {
  const doc = parseDocument(text);
  const rows = [];
  const problems = [];
  const walk = (map, prefix, firstComment) => {
    map.items.forEach((pair, i) => {
      const name = String(isScalar(pair.key) ? pair.key.value : pair.key);
      const key = prefix ? `${prefix}.${name}` : name;
      const description = commentOf(pair, i === 0 ? firstComment : undefined);
      const startsRight = description.startsWith(key) || (!prefix && description.startsWith(name));
      if (!startsRight) problems.push(`${key}: comment must start with "${key}" (got "${description.slice(0, 40)}")`);
      if (isMap(pair.value) && pair.value.items.length > 0 && hasOwnComments(pair.value)) {
        walk(pair.value, key, pair.value.commentBefore);
        return;
      }
      const value = pair.value?.toJSON?.() ?? null;
      rows.push({ key, type: typeOf(value), default: JSON.stringify(value), description });
    });
  };
  walk(doc.contents, '', doc.contents.commentBefore ?? undefined);
  return { rows, problems };
}

const cell = (s) => s.replace(/\|/g, '\\|');

export function valuesTable(text) {
  const { rows } = valuesRows(text);
  return [
    '| Key | Type | Default | Description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${r.type} | \`${cell(r.default)}\` | ${cell(r.description)} |`),
  ].join('\n');
}

const START = '<!-- values-table:start -->';
const END = '<!-- values-table:end -->';

/** The document with its marked section replaced by the current table; unchanged without markers. */
export function withValuesTable(doc, table = valuesTable()) {
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) return doc;
  return `${doc.slice(0, a + START.length)}\n${table}\n${doc.slice(b)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { problems } = valuesRows();
  if (problems.length > 0) {
    process.stderr.write(`values.yaml: undocumented keys:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    process.exit(1);
  }
  const w = process.argv.indexOf('--write');
  if (w >= 0) {
    for (const file of process.argv.slice(w + 1)) writeFileSync(file, withValuesTable(readFileSync(file, 'utf8')));
  } else if (!process.argv.includes('--check')) {
    process.stdout.write(`${valuesTable()}\n`);
  }
}
