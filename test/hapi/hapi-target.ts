import { contentHash } from '../../src/fhir/canonical';
import type { ResourceMapper } from '../../src/mapping/contract';
import { withoutStampedSource } from '../../src/target';
import type { Stack } from '../../stack';
import type { SupportedType } from '../../stack/openemr';
import { diffHashes, expectedTarget, typesOf } from '../helpers/incremental-stack';

/** Every resource of a type HAPI holds now (deleted ones excluded), paged by HAPI's next links. */
export async function hapiAll(fhirUrl: string, type: string): Promise<Array<Record<string, any>>> {
  const out: Array<Record<string, any>> = [];
  let url: string | undefined = `${fhirUrl}/${type}?_count=200`;
  while (url) {
    const res = await fetch(url, { headers: { accept: 'application/fhir+json', 'cache-control': 'no-cache' } });
    if (!res.ok) throw new Error(`HAPI search ${type} answered ${res.status}`);
    const bundle = (await res.json()) as {
      entry?: Array<{ resource: Record<string, any> }>;
      link?: Array<{ relation: string; url: string }>;
    };
    for (const e of bundle.entry ?? []) out.push(e.resource);
    url = bundle.link?.find((l) => l.relation === 'next')?.url;
  }
  return out;
}

/** Differences between the mapped source and HAPI's content: empty when they are equal. */
export async function hapiDiff(
  stack: Stack,
  mapper: ResourceMapper,
  /** Default: the types the mapper's settings carry (mapperFor), else Patient and Observation. */
  types?: readonly SupportedType[],
): Promise<{ missing: string[]; stale: string[]; extra: string[]; unmappable: number }> {
  const { hashes, unmappable } = expectedTarget(stack, mapper, types);
  const actual = new Map<string, string>();
  for (const type of typesOf(mapper, types))
    for (const r of await hapiAll(stack.hapi!.fhirUrl, type)) actual.set(`${type}/${r.id}`, contentHash(withoutStampedSource(r) as never));
  return { ...diffHashes(hashes, actual), unmappable: unmappable.length };
}
