// Placeholder until the owning issue lands; exits non-zero so nothing mistakes it for success.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('imdsgate explain: not implemented yet\n');
  return 3;
}
