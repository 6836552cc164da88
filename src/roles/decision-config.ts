// The decision's configuration, built one way for the agent (kube/identity.ts) and `imdsgate explain`,
// so explain never denies what the agent allows: the same flags, and the same base-ARN discovery (the
// account of the node's instance identity document when --base-role-arn is unset; see src/arn.ts).
// No I/O here: the identity document comes from a consumer-owned source.
import { baseRoleArnFor, checkBaseRoleArn } from '../arn.js';
import type { DecisionConfig } from './decide.js';
import type { PatternFormat } from './patterns.js';

/** The flags the decision reads (a subset of Config). */
export interface DecisionFlags {
  readonly baseRoleArn?: string | undefined;
  readonly defaultRole?: string | undefined;
  readonly externalId?: string | undefined;
  readonly requireNamespaceAllow: boolean;
  readonly namespaceRestrictionFormat: PatternFormat;
}

export interface AccountSource {
  identityDocument(): Promise<{ readonly accountId: string; readonly region: string }>;
}

/**
 * The decision config. Without --base-role-arn the base comes from `account` when given; when that fails
 * `onUnknownAccount` hears why and bare role names are denied (fail closed).
 */
export async function buildDecisionConfig(
  flags: DecisionFlags,
  account: AccountSource | undefined,
  onUnknownAccount: (err: Error) => void = () => undefined,
): Promise<DecisionConfig> {
  let base = flags.baseRoleArn;
  if (base === undefined && account !== undefined) {
    try {
      const doc = await account.identityDocument();
      const discovered = baseRoleArnFor(doc.accountId, doc.region);
      const bad = checkBaseRoleArn(discovered);
      if (bad !== undefined) throw new Error(`identity document: ${bad}`);
      base = discovered;
    } catch (err) {
      onUnknownAccount(err as Error);
    }
  }
  return {
    ...(base !== undefined ? { baseRoleArn: base } : {}),
    ...(flags.defaultRole !== undefined ? { defaultRole: flags.defaultRole } : {}),
    ...(flags.externalId !== undefined ? { externalId: flags.externalId } : {}),
    requireNamespaceAllow: flags.requireNamespaceAllow,
    namespaceRestrictionFormat: flags.namespaceRestrictionFormat,
  };
}
