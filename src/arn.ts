// IAM role ARNs: the one rule for what counts as a role ARN, used by the flags (--base-role-arn,
// --default-role), the identity file, the role decision and the STS issuer, so none of them accepts an
// ARN another refuses. The rule is what AssumeRole accepts: RoleArn is 20-2048 characters
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html), and a role's path is `/`
// or `/segment/.../` and its name 1-64 of [\w+=,.@-]
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns,
// https://docs.aws.amazon.com/IAM/latest/APIReference/API_Role.html). Pure functions.

/** arn:PARTITION:iam::ACCOUNT:role/[path/]name (partitions aws, aws-cn, aws-us-gov, ...). */
export const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
/** arn:PARTITION:iam::ACCOUNT:role/[path/]: a role ARN without the name, to which a bare name is appended. */
export const BASE_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*$/;
const MAX_LENGTH = 2048;
/** A bare role name, with an optional path: what may follow a base ARN. */
const ROLE_NAME = /^(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;

/** A problem description, or undefined when STS would accept the ARN. */
export function checkRoleArn(arn: string): string | undefined {
  return arn.length <= MAX_LENGTH && ROLE_ARN.test(arn)
    ? undefined
    : `not an IAM role ARN: "${arn.slice(0, 200)}"`;
}

export function checkBaseRoleArn(base: string): string | undefined {
  return BASE_ROLE_ARN.test(base)
    ? undefined
    : `not arn:PARTITION:iam::ACCOUNT:role/[path/]: "${base.slice(0, 200)}"`;
}

/** A role ARN from a full ARN, or from a bare name (or path/name) and the base. */
export function toRoleArn(value: string, base: string | undefined): { arn: string } | { problem: string } {
  if (value.startsWith('arn:')) {
    const bad = checkRoleArn(value);
    return bad === undefined ? { arn: value } : { problem: bad };
  }
  if (!ROLE_NAME.test(value)) return { problem: `not a role name or ARN: "${value.slice(0, 200)}"` };
  if (base === undefined) return { problem: `role name "${value}" needs --base-role-arn (account unknown)` };
  const arn = `${base}${value}`;
  const bad = checkRoleArn(arn);
  return bad === undefined ? { arn } : { problem: bad };
}

/** The account of `arn:aws:iam::123456789012:role/x`, or undefined. */
export function accountOf(arn: string): string | undefined {
  return /^arn:[^:]+:iam::(\d{12}):/.exec(arn)?.[1];
}

/**
 * `arn:PARTITION:iam::ACCOUNT:role/` from the instance identity document's account and region: the
 * partition follows the region (https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html).
 */
export function baseRoleArnFor(accountId: string, region: string): string {
  const partition = region.startsWith('cn-')
    ? 'aws-cn'
    : region.startsWith('us-gov-')
      ? 'aws-us-gov'
      : region.startsWith('us-isob')
        ? 'aws-iso-b'
        : region.startsWith('us-iso')
          ? 'aws-iso'
          : 'aws';
  return `arn:${partition}:iam::${accountId}:role/`;
}
