/**
 * The id a reference points at when it names a resource of `type`: "Patient/1", "urn:uuid:1",
 * "https://host/fhir/Patient/1/_history/2" all give "1". Undefined for other types or shapes.
 */
export function referencedId(reference: string | undefined, type: string): string | undefined {
  if (!reference) return undefined;
  if (reference.startsWith('urn:uuid:')) return reference.slice('urn:uuid:'.length) || undefined;
  const m = new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`).exec(reference);
  return m?.[1];
}
