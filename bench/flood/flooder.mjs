#!/usr/bin/env node
// One hostile pod: keeps up to TARGET connections open from one source address for SECONDS, half of them
// idle (never a byte), half slow-header (a partial request head, one more byte every 2 s), and opens a
// new one whenever the agent closes one (at most RATE per second). Prints a JSON summary on exit.
// Usage: node flooder.mjs PORT SOURCE TARGET SECONDS [RATE]
/* global setTimeout, setInterval, clearInterval */
import { connect } from 'node:net';

const [port, source, target, seconds, rate = '2000'] = process.argv.slice(2);
const TARGET = Number(target);
const s = { opened: 0, refused429: 0, closedByAgent: 0, errors: 0, maxOpen: 0 };
let open = 0;
let stop = false;

function one(i) {
  s.opened++;
  open++;
  s.maxOpen = Math.max(s.maxOpen, open);
  let got = '';
  const sock = connect({ port: Number(port), host: '127.0.0.1', localAddress: source });
  let trickle;
  sock.on('connect', () => {
    if (i % 2 === 0) return; // idle
    sock.write('GET /latest/meta-data/ HTTP/1.1\r\nX-Slow: ');
    trickle = setInterval(() => sock.write('a'), 2000);
  });
  sock.on('data', (c) => (got += c.toString('latin1')));
  sock.on('error', () => s.errors++);
  sock.on('close', () => {
    socks.delete(sock);
    clearInterval(trickle);
    open--;
    if (got.startsWith('HTTP/1.1 429')) s.refused429++;
    else if (!stop) s.closedByAgent++;
  });
  socks.add(sock);
}

const socks = new Set();
let i = 0;
const perTick = Math.max(1, Math.round(Number(rate) / 100));
const tick = setInterval(() => {
  for (let k = 0; k < perTick && open < TARGET; k++) one(i++);
}, 10);
setTimeout(
  () => {
    stop = true;
    clearInterval(tick);
    for (const x of socks) x.destroy();
    process.stdout.write(JSON.stringify(s) + '\n');
    setTimeout(() => process.exit(0), 200);
  },
  Number(seconds) * 1000,
);
