// STS parameter bounds, checked before any call (docs/protocol.md §11, checklist 54-56, 60).
// moto accepts a 1-char session name, DurationSeconds=100 and RoleArn=notanarn, so these checks are ours
// alone: nothing else stands between a bad annotation and a malformed STS request. Pure functions.

/** botocore STS model: roleSessionNameType, 2-64 of [\w+=,.@-]. */
export const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
/** botocore STS model: externalIdType, 2-1224 of [\w+=,.@:/-]. */
export const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
/** botocore STS model: tagKeyType 1-128, tagValueType 0-256, both [\p{L}\p{Z}\p{N}_.:/=+\-@]. */
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
export const MAX_TAGS = 50;
// The role ARN rule is shared with the flags, the identity file and the role decision: src/arn.ts.
export { ROLE_ARN, checkRoleArn } from '../arn.js';

export const MIN_DURATION = 900;
export const MAX_DURATION = 43_200;
/** AWS: a role assumed with role credentials (role chaining) is capped at one hour. */
export const MAX_CHAINED_DURATION = 3600;

export interface SessionTag {
  readonly Key: string;
  readonly Value: string;
}

/** Returns a problem description, or undefined when the value is acceptable. */
export function checkSessionName(name: string): string | undefined {
  return SESSION_NAME.test(name) ? undefined : `RoleSessionName must be 2-64 of [\\w+=,.@-], got "${name}"`;
}

export function checkExternalId(id: string): string | undefined {
  return EXTERNAL_ID.test(id) ? undefined : 'ExternalId must be 2-1224 characters of [\\w+=,.@:/-]';
}

export function checkDuration(seconds: number, chained: boolean): string | undefined {
  const max = chained ? MAX_CHAINED_DURATION : MAX_DURATION;
  if (!Number.isInteger(seconds) || seconds < MIN_DURATION || seconds > max) {
    return `DurationSeconds must be an integer ${MIN_DURATION}-${max}${chained ? ' (role chaining)' : ''}, got ${seconds}`;
  }
  return undefined;
}

export function checkTags(tags: readonly SessionTag[]): string | undefined {
  if (tags.length > MAX_TAGS) return `at most ${MAX_TAGS} session tags`;
  for (const { Key, Value } of tags) {
    if (Key.length < 1 || Key.length > 128 || !TAG_CHARS.test(Key)) return `invalid session tag key "${Key}"`;
    if (Value.length > 256 || !TAG_CHARS.test(Value)) return `invalid value for session tag ${Key}`;
  }
  return undefined;
}
