import {
  UCUM,
  capitalize,
  evalFhirPathTyped,
  fhirTypeToJsType,
  getDataType,
  isEmpty,
  isPrimitiveType,
  parseFhirPath,
  validationRegexes,
} from '@medplum/core';
import type { InternalSchemaElement, InternalTypeSchema, TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';

/**
 * A quick "certainly valid" answer for Medplum's validator, which stays the judge.
 *
 * Medplum's `validateResource` crawls every element of a type's schema, present or not, and builds a
 * path string and a wrapper object at each step: about 0.17 ms per Observation, most of a sync's CPU.
 * This check walks only what a resource holds, over tables compiled once from the very schemas
 * Medplum parsed, and runs Medplum's own FHIRPath engine for the invariants. It applies each rule
 * Medplum applies, and is stricter wherever matching Medplum exactly would take more code: empty
 * values, nulls, primitive extensions (`_x`), contained resources, slicing, fixed and pattern values.
 *
 * It answers true only when every rule holds; on false the caller runs `validateResource`, which
 * gives the verdict and the messages. A differential test holds it to that: across the sample data
 * and thousands of broken variants, nothing it accepts is refused by Medplum.
 */
export function passesFastCheck(resource: Resource): boolean {
  const root = resource as unknown as Record<string, unknown>;
  const type = root.resourceType;
  if (typeof type !== 'string') return false;
  const compiled = compiledType(type);
  if (!compiled?.isResource) return false;
  const resourceValue: TypedValue = { type, value: root };
  try {
    return constraintsHold(compiled.constraints, resourceValue, resourceValue) && objectPasses(root, compiled, resourceValue, true);
  } catch {
    return false; // whatever surprised the walk, Medplum judges
  }
}

interface CompiledElement {
  min: number;
  max: number;
  isArray: boolean;
  /** Medplum's invariants on this element (error severity, minus those it skips), parsed once. */
  constraints: Invariant[];
  /** Elements whose rules this check does not carry (slicing, fixed or pattern values). */
  judgedByMedplum: boolean;
}

interface CompiledProperty {
  element: CompiledElement;
  /** Position of the element, so two forms of one choice element are seen. */
  index: number;
  /** The type the property name selects (e.g. `valueQuantity` selects Quantity). */
  typeCode: string;
}

interface CompiledType {
  isResource: boolean;
  properties: Map<string, CompiledProperty>;
  /** Positions of the elements with a minimum cardinality: checked when absent. */
  required: number[];
  elementCount: number;
  constraints: Invariant[];
}

type Invariant = ReturnType<typeof parseFhirPath>;

/** Invariants Medplum's validator does not evaluate (validation.ts, skippedConstraintKeys). */
const SKIPPED_CONSTRAINTS = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

const compiledTypes = new Map<string, CompiledType | null>();

/** Medplum's schema for a type, compiled on first use; null when the type is unknown. */
function compiledType(type: string): CompiledType | null {
  let compiled = compiledTypes.get(type);
  if (compiled === undefined) {
    compiled = compile(type);
    compiledTypes.set(type, compiled);
  }
  return compiled;
}

function compile(type: string): CompiledType | null {
  let schema: InternalTypeSchema;
  try {
    schema = getDataType(type);
  } catch {
    return null;
  }
  const properties = new Map<string, CompiledProperty>();
  const ambiguous = new Set<string>();
  const required: CompiledType['required'] = [];
  const keys = Object.keys(schema.elements);
  keys.forEach((key, index) => {
    const element = schema.elements[key]!;
    const compiled: CompiledElement = {
      min: element.min,
      max: element.max,
      isArray: !!element.isArray,
      constraints: compileConstraints(element.constraints),
      judgedByMedplum: !!(element.slicing || element.fixed || element.pattern) || key.includes('.'),
    };
    // The property names Medplum reads for this element (fhirpath/utils.ts,
    // getTypedPropertyValueWithSchema): the element's last path segment, "[x]" replaced by each type.
    const last = element.path.slice(element.path.lastIndexOf('.') + 1);
    const names: string[] = [];
    for (const t of element.type ?? []) {
      const name = last.replace('[x]', capitalize(t.code));
      if (names.includes(name)) continue; // the first type with this name is the one Medplum picks
      names.push(name);
      if (properties.has(name)) ambiguous.add(name);
      else properties.set(name, { element: compiled, index, typeCode: t.code });
    }
    if (element.min > 0) required.push(index);
  });
  // A name two elements could claim: Medplum's reading of it is not worth copying.
  for (const name of ambiguous) properties.delete(name);
  return {
    isResource: schema.kind === 'resource',
    properties,
    required,
    elementCount: keys.length,
    constraints: compileConstraints(schema.constraints),
  };
}

function compileConstraints(constraints: InternalSchemaElement['constraints']): Invariant[] {
  return (constraints ?? [])
    .filter((c) => c.severity === 'error' && !SKIPPED_CONSTRAINTS.has(c.key))
    .map((c) => parseFhirPath(c.expression));
}

const ucum: TypedValue = { type: 'string', value: UCUM };

/** Medplum's isExpressionTrue, with the variables it sets for a resource that contains none. */
function constraintsHold(constraints: Invariant[], value: TypedValue, resource: TypedValue): boolean {
  for (const atom of constraints) {
    const variables: Record<string, TypedValue> = { '%context': value, '%ucum': ucum, '%resource': resource, '%rootResource': resource };
    const result = evalFhirPathTyped(atom, [value], variables);
    if (result.length !== 1 || result[0]!.value !== true) return false;
  }
  return true;
}

function objectPasses(obj: Record<string, unknown>, type: CompiledType, resource: TypedValue, isRoot: boolean): boolean {
  const seen = new Uint8Array(type.elementCount);
  for (const key of Object.keys(obj)) {
    if (key === 'resourceType' && isRoot) continue;
    const property = type.properties.get(key);
    if (!property || seen[property.index]) return false; // unknown, `_x`, or a second choice form
    seen[property.index] = 1;
    if (!propertyPasses(obj[key], property, resource)) return false;
  }
  for (const index of type.required) if (!seen[index]) return false;
  return true;
}

function propertyPasses(value: unknown, property: CompiledProperty, resource: TypedValue): boolean {
  const { element, typeCode } = property;
  // Medplum reads an empty value as absent; this check leaves such resources to it.
  if (element.judgedByMedplum || isEmpty(value)) return false;
  if (Array.isArray(value) !== element.isArray) return false;
  const items = Array.isArray(value) ? value : [value];
  if (items.length < element.min || items.length > element.max) return false;
  const primitive = isPrimitiveType(typeCode);
  const nested = primitive ? undefined : compiledType(typeCode);
  if (!primitive && (!nested || nested.isResource || typeCode === 'Resource')) return false;
  for (const item of items) {
    if (item === null || item === undefined) return false;
    if (element.constraints.length > 0 && !constraintsHold(element.constraints, { type: typeCode, value: item }, resource)) return false;
    if (primitive) {
      if (!primitivePasses(item, typeCode)) return false;
    } else if (
      typeof item !== 'object' ||
      Array.isArray(item) ||
      isEmpty(item) ||
      !objectPasses(item as Record<string, unknown>, nested!, resource, false)
    ) {
      return false;
    }
  }
  return true;
}

/** Medplum's validatePrimitiveType, validateString and validateNumber. */
function primitivePasses(value: unknown, typeCode: string): boolean {
  const expected = (fhirTypeToJsType as Record<string, string>)[typeCode];
  if (!expected || typeof value !== expected) return false;
  if (expected === 'string') {
    const text = value as string;
    if (!text.trim() || text.length > 1024 * 1024) return false;
    const regex = validationRegexes[typeCode];
    return !regex || regex.exec(text) !== null;
  }
  if (expected === 'number') {
    const n = value as number;
    if (!Number.isFinite(n)) return false;
    if ((typeCode === 'integer' || typeCode === 'positiveInt' || typeCode === 'unsignedInt') && !Number.isInteger(n)) return false;
    if (typeCode === 'positiveInt' && n <= 0) return false;
    if (typeCode === 'unsignedInt' && n < 0) return false;
  }
  return true;
}
