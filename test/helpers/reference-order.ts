/**
 * Watches the reference order of a running connector's writes: before each batch or single write is
 * sent, everything its carried references point at must already be in the target (the AHDS stand-in).
 */
import { getConnector } from '../../functions/shared/runtime';
import type { Stack } from '../../stack';
import type { SyncedResource } from '../../src/fhir/types';

type Json = Record<string, any>;

/** Elements holding a reference to a carried type (Patient in subject or patient, Encounter). */
const CARRIED_ELEMENTS = ['subject', 'patient', 'encounter'];

/** References of a resource to carried types ("Type/id"). */
export function carriedRefs(r: Json): string[] {
  return CARRIED_ELEMENTS.flatMap((k) => (typeof r[k]?.reference === 'string' ? [r[k].reference as string] : []));
}

async function heldIds(stack: Stack, types: readonly string[]): Promise<{ held: Set<string>; all: Json[] }> {
  const held = new Set<string>();
  const all: Json[] = [];
  for (const type of types)
    for (const r of await stack.ahds.snapshot(type)) {
      held.add(`${type}/${r.id}`);
      all.push(r as Json);
    }
  return { held, all };
}

export interface WriteWatch {
  /** Every write sent that pointed at something the target did not hold then ("Type/id -> Ref"). */
  dangling: string[];
  /** Types in the order their first write was sent. */
  firstSent: string[];
}

/** Wraps the connector's writer (writeBatch, writeAll) to record what WriteWatch describes. */
export async function watchWrites(stack: Stack, types: readonly string[]): Promise<WriteWatch> {
  const watch: WriteWatch = { dangling: [], firstSent: [] };
  const connector = await getConnector();
  const writer = connector.writer as unknown as Record<string, (...args: any[]) => Promise<any>>;
  for (const method of ['writeBatch', 'writeAll']) {
    const original = writer[method]!.bind(writer);
    writer[method] = async (resources: SyncedResource[], ...rest: unknown[]) => {
      const { held } = await heldIds(stack, types);
      for (const r of resources) {
        if (!watch.firstSent.includes(r.resourceType)) watch.firstSent.push(r.resourceType);
        for (const ref of carriedRefs(r as Json)) if (!held.has(ref)) watch.dangling.push(`${r.resourceType}/${r.id} -> ${ref}`);
      }
      return original(resources, ...rest);
    };
  }
  return watch;
}

/** References in the target that point at nothing it holds. */
export async function unresolvedInTarget(stack: Stack, types: readonly string[]): Promise<string[]> {
  const { held, all } = await heldIds(stack, types);
  return all.flatMap((r) =>
    carriedRefs(r)
      .filter((ref) => !held.has(ref))
      .map((ref) => `${r.resourceType}/${r.id} -> ${ref}`),
  );
}
