import { keyString, type ResourceKey } from '../fhir/types';

/**
 * Splits resources into batch bundles of at most `size` entries with no two entries for one
 * resource in a bundle (AHDS's parallel processing forbids it). A later duplicate goes to a later
 * bundle, so the last version of a resource is written last. Order is otherwise kept.
 */
export function planBatches<T extends ResourceKey>(items: readonly T[], size: number, maxEntries = 500): T[][] {
  if (size < 1 || size > maxEntries) throw new RangeError(`batch size must be 1 to ${maxEntries} (the target's bundle limit)`);
  const batches: T[][] = [];
  // Index of the first bundle that still has room, so planning stays linear.
  let firstOpen = 0;
  const lastBundleOf = new Map<string, number>();
  for (const item of items) {
    const key = keyString(item);
    let index = Math.max(firstOpen, (lastBundleOf.get(key) ?? -1) + 1);
    while (batches[index] && batches[index]!.length >= size) index++;
    (batches[index] ??= []).push(item);
    lastBundleOf.set(key, index);
    while (batches[firstOpen] && batches[firstOpen]!.length >= size) firstOpen++;
  }
  return batches;
}
