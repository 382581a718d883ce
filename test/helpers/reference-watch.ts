/**
 * Reference checks for tests that carry several resource types: which references of a resource
 * point at carried types (at the element paths src/sync/resource-types.ts lists), what the target
 * holds that points at nothing, and a watch on the connector's writes that records every write sent
 * before what it points at was in the target, and the order in which types were first sent.
 */
import { getConnector } from '../../functions/shared/runtime';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import type { SyncedResource } from '../../src/fhir/types';
import { RESOURCE_TYPES } from '../../src/sync/resource-types';
import { referenceTargets } from '../../src/sync/sync-service';

type Json = Record<string, any>;

/** "Type/id" of every reference a resource holds to one of `types`. */
export function carriedRefs(r: Json, types: readonly string[]): string[] {
  const spec = RESOURCE_TYPES.find((t) => t.type === r.resourceType);
  return (spec?.references ?? [])
    .filter((ref) => types.includes(ref.type))
    .flatMap((ref) => referenceTargets(r as SyncedResource, ref.element, ref.type).map((id) => `${ref.type}/${id}`));
}

async function heldIn(stack: Stack, types: readonly SupportedType[]): Promise<{ held: Set<string>; all: Json[] }> {
  const held = new Set<string>();
  const all: Json[] = [];
  for (const type of types)
    for (const r of await stack.ahds.snapshot(type)) {
      held.add(`${type}/${r.id}`);
      all.push(r as Json);
    }
  return { held, all };
}

/** References in the target (among `types`) that point at nothing it holds. */
export async function unresolvedReferences(stack: Stack, types: readonly SupportedType[]): Promise<string[]> {
  const { held, all } = await heldIn(stack, types);
  return all.flatMap((r) =>
    carriedRefs(r, types)
      .filter((ref) => !held.has(ref))
      .map((ref) => `${r.resourceType}/${r.id} -> ${ref}`),
  );
}

/** The target holds "Type/id" now: a point lookup in the stand-in's version heads (a snapshot per write would be quadratic). */
function holds(stack: Stack, ref: string): boolean {
  const slash = ref.indexOf('/');
  return stack.ahds.store.head(ref.slice(0, slash), ref.slice(slash + 1))?.deleted === false;
}

export interface WriteWatch {
  /** Every write sent that pointed at something the target did not hold then ("Type/id -> Ref"). */
  dangling: string[];
  /** Types in the order their first write was sent. */
  firstSent: string[];
  /** When given: the type of every write sent, in order, a run of one type recorded once. */
  sent?: string[];
}

/** Wraps the connector's writer: before each write is sent, everything it points at must be in the target. */
export async function watchWrites(
  stack: Stack,
  types: readonly SupportedType[],
  record: WriteWatch = { dangling: [], firstSent: [] },
): Promise<WriteWatch> {
  const connector = await getConnector();
  const writer = connector.writer as unknown as Record<string, (...args: any[]) => Promise<any>>;
  for (const method of ['writeBatch', 'writeAll']) {
    const original = writer[method]!.bind(writer);
    writer[method] = async (resources: SyncedResource[], ...rest: unknown[]) => {
      for (const r of resources) {
        if (!record.firstSent.includes(r.resourceType)) record.firstSent.push(r.resourceType);
        if (record.sent && record.sent.at(-1) !== r.resourceType) record.sent.push(r.resourceType);
        for (const ref of carriedRefs(r as Json, types))
          if (!holds(stack, ref)) record.dangling.push(`${r.resourceType}/${r.id} -> ${ref}`);
      }
      return original(resources, ...rest);
    };
  }
  return record;
}
