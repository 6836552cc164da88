// How netfilter commands are run: an injected CommandRunner (real: execa, no wrapper library), so the
// guard can be unit-tested with a fake and integration-tested inside a network namespace.
import { execa } from 'execa';
import { NetfilterError } from './errors.js';

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandRunner {
  /** Runs file with args; resolves with any exit code; rejects with NetfilterError('binary') when absent. */
  run(file: string, args: readonly string[], input?: string): Promise<CommandResult>;
}

/** iptables with -w can wait up to 5 s for the xtables lock; anything beyond this is a hang. */
const COMMAND_TIMEOUT_MS = 30_000;

export function execaRunner(): CommandRunner {
  return {
    async run(file, args, input) {
      const r = await execa(file, [...args], {
        reject: false,
        timeout: COMMAND_TIMEOUT_MS,
        ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
        env: { LC_ALL: 'C' }, // stable English messages: classify() reads them
      });
      if (r.exitCode === undefined) {
        if ((r as { code?: string }).code === 'ENOENT') throw missingBinary(file);
        throw new NetfilterError('apply', `${file}: ${r.shortMessage}`);
      }
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    },
  };
}

export const missingBinary = (file: string): NetfilterError =>
  new NetfilterError(
    'binary',
    `${file} not found in PATH: the image needs the ${file.startsWith('conntrack') ? 'conntrack' : 'iptables'} package`,
  );

/**
 * Turns a failed command into an error that says what to do. Permission problems are the common one
 * (Azure/aad-pod-identity#294): the container lacks CAP_NET_ADMIN or runs in the wrong network namespace.
 */
export function classify(file: string, args: readonly string[], r: CommandResult): NetfilterError {
  const text = `${r.stderr}\n${r.stdout}`.trim();
  const cmd = `${file} ${args.join(' ')}`;
  if (/Permission denied|Operation not permitted|you must be root/i.test(text)) {
    return new NetfilterError(
      'permission',
      `${cmd}: permission denied; imdsgate needs CAP_NET_ADMIN in the node's network namespace (hostNetwork) (${firstLine(text)})`,
    );
  }
  if (
    /Table does not exist|do you need to insmod|Protocol not supported|Could not fetch rule set|Address family not supported/i.test(
      text,
    )
  ) {
    return new NetfilterError(
      'backend',
      `${cmd}: this iptables backend is not usable on this kernel; try --iptables-backend=nft or legacy (${firstLine(text)})`,
    );
  }
  return new NetfilterError('apply', `${cmd}: exit ${r.exitCode}: ${firstLine(text) || 'no output'}`);
}

const firstLine = (s: string) => s.split('\n').find((l) => l.trim() !== '') ?? '';
