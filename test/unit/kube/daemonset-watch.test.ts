import { describe, expect, it } from 'vitest';
import {
  observe,
  parseDaemonSetRef,
  type OwnerObservation,
  type OwnerState,
} from '../../../src/kube/daemonset-watch.js';

const S = (seen: boolean, deleted: boolean): OwnerState => ({ seen, deleted });
const list = (present: boolean, deleting = false): OwnerObservation => ({ kind: 'list', present, deleting });
const ev = (type: 'ADDED' | 'MODIFIED' | 'DELETED', deleting = false): OwnerObservation => ({
  kind: 'event',
  type,
  deleting,
});

describe('own DaemonSet: deleted only on evidence', () => {
  it.each<[string, OwnerState, OwnerObservation, OwnerState]>([
    ['first list finds it', S(false, false), list(true), S(true, false)],
    [
      'first list finds nothing: no evidence (wrong name, no RBAC yet)',
      S(false, false),
      list(false),
      S(false, false),
    ],
    [
      'relist finds nothing after it was seen: deleted while the watch was down',
      S(true, false),
      list(false),
      S(true, true),
    ],
    [
      'listed with a deletionTimestamp (foreground deletion)',
      S(false, false),
      list(true, true),
      S(true, true),
    ],
    ['DELETED event', S(true, false), ev('DELETED'), S(true, true)],
    ['MODIFIED with a deletionTimestamp', S(true, false), ev('MODIFIED', true), S(true, true)],
    ['MODIFIED by a rolling update', S(true, false), ev('MODIFIED'), S(true, false)],
    [
      'deleted stays deleted, even if a new one of that name appears',
      S(true, true),
      ev('ADDED'),
      S(true, true),
    ],
    ['deleted stays deleted on a relist', S(true, true), list(true), S(true, true)],
  ])('%s', (_what, before, o, after) => {
    expect(observe(before, o)).toEqual(after);
  });
});

describe('parseDaemonSetRef', () => {
  it.each([
    ['kube-system/imdsgate', { namespace: 'kube-system', name: 'imdsgate' }],
    ['ns/a.b-c', { namespace: 'ns', name: 'a.b-c' }],
    ['imdsgate', undefined],
    ['a/b/c', undefined],
    ['NS/x', undefined],
    ['/x', undefined],
  ])('%s', (ref, want) => {
    expect(parseDaemonSetRef(ref)).toEqual(want);
  });
});
