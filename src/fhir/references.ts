import { isValidFhirId } from './ids';

/** A literal reference: relative, absolute, or versioned ("…/Type/id/_history/v"). */
const LITERAL_REF = /(?:^|\/)([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?\/?$/;

/**
 * The type and id a reference names: "Patient/1", "https://host/fhir/Patient/1/_history/2", or
 * the transaction-bundle form "urn:uuid:1", whose type is the hint (Reference.type, or what the
 * element implies). Undefined for anything else.
 */
export function parseReference(reference: string | undefined, typeHint: string | undefined): { type: string; id: string } | undefined {
  if (!reference) return undefined;
  if (reference.startsWith('urn:uuid:')) {
    const id = reference.slice('urn:uuid:'.length);
    return typeHint && isValidFhirId(id) ? { type: typeHint, id } : undefined;
  }
  const m = LITERAL_REF.exec(reference);
  return m ? { type: m[1]!, id: m[2]! } : undefined;
}

/** The id a reference gives when it names a resource of `type` (a urn:uuid counts as that type). */
export function referencedId(reference: string | undefined, type: string): string | undefined {
  const parsed = parseReference(reference, type);
  return parsed?.type === type ? parsed.id : undefined;
}
