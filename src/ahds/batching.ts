import { keyString, type ResourceKey } from '../fhir/types';

/**
 * Splits resources into batch bundles of at most `size` entries with no two entries for one
 * resource in a bundle (AHDS's parallel processing forbids it). A later duplicate goes to a later
 * bundle, so the last version of a resource is written last. Order is otherwise kept.
 */
export function planBatches<T extends ResourceKey>(items: readonly T[], size: number): T[][] {
  if (size < 1 || size > 500) throw new RangeError('batch size must be 1 to 500 (the AHDS bundle limit)');
  const batches: Array<{ items: T[]; keys: Set<string> }> = [];
  // Index of the first bundle that still has room, so planning stays linear.
  let firstOpen = 0;
  const lastBundleOf = new Map<string, number>();
  for (const item of items) {
    const key = keyString(item);
    const after = (lastBundleOf.get(key) ?? -1) + 1;
    let index = Math.max(firstOpen, after);
    while (batches[index] && batches[index]!.items.length >= size) index++;
    batches[index] ??= { items: [], keys: new Set() };
    batches[index]!.items.push(item);
    batches[index]!.keys.add(key);
    lastBundleOf.set(key, index);
    while (batches[firstOpen] && batches[firstOpen]!.items.length >= size) firstOpen++;
  }
  return batches.filter(Boolean).map((b) => b.items);
}

/** Batch entry statuses worth resubmitting: the entry itself can succeed later. */
export function isResubmittableEntryStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status <= 599);
}
