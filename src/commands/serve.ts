// `imdsgate serve`: configuration problems are printed and exit 2 before any port opens; start-up
// failures exit 1; SIGTERM/SIGINT close gracefully (the interception rules stay in place) and exit 0.
import { ConfigError, loadConfig, optionsHelp } from '../config.js';
import { serve } from '../serve.js';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: imdsgate serve [flags]\n\n${optionsHelp()}\n`);
    return 0;
  }
  let cfg;
  try {
    cfg = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`imdsgate serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  let served;
  try {
    served = await serve(cfg);
  } catch (err) {
    process.stderr.write(`imdsgate serve: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stderr.write(`imdsgate serve: ${signal}, shutting down\n`);
  await served.close();
  return 0;
}
