// Validates the JSON that `up` pipes in and writes it atomically, so a reader never sees half a file.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const target = process.argv[2];
if (!target) throw new Error('usage: write-state.mjs STATE_FILE < json');
const state = JSON.parse(readFileSync(0, 'utf8'));
writeFileSync(`${target}.tmp`, JSON.stringify(state, null, 2) + '\n');
renameSync(`${target}.tmp`, target);
