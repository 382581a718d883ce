import { capitalize, getDataType, isPrimitiveType, validationRegexes } from '@medplum/core';
import type { InternalSchemaElement } from '@medplum/core';
import { isValidFhirId } from '../fhir/ids';

/**
 * What the AHDS FHIR service (microsoft/fhir-server) refuses on write, over the R4 definitions Medplum
 * parsed (the data dictionary only; Medplum's validator is not involved). Three stages, as the server
 * runs them:
 *
 * 1. parse (Firely's permissive JSON parser; FhirJsonInputFormatter): unknown elements, wrong JSON
 *    types, a list where one value goes (or the reverse), two forms of one choice element, at any
 *    depth. In a bundle a parse error anywhere refuses the whole bundle (ValidateModelStateAttribute).
 * 2. content (ResourceContentValidator: DotNetAttributeValidation with recurse: false): the
 *    resource's own elements only: minimum cardinality and primitive formats. Nothing nested, no
 *    invariants, no bindings, no profiles.
 * 3. narrative (NarrativeHtmlSanitizer): `text.div` holds one non-empty div of allowed XHTML
 *    elements and attributes, no dangerous href scheme, src only #, data:, http(s):.
 *
 * Issues name paths and rules; they never quote values (element names from the resource are shown
 * as "…" in `expression` so callers can keep them out of dead letters).
 */
export interface AhdsIssue {
  stage: 'parse' | 'content' | 'narrative';
  /** FHIRPath of the problem, with names not in the definitions replaced by "…". */
  expression: string;
  message: string;
}

export function ahdsParseIssues(resource: unknown): AhdsIssue[] {
  const issues: AhdsIssue[] = [];
  if (!isObject(resource) || typeof resource.resourceType !== 'string' || !typeInfo(resource.resourceType)?.isResource) {
    return [{ stage: 'parse', expression: '', message: 'The resource type is unknown.' }];
  }
  walk(resource, resource.resourceType, resource.resourceType, issues, true);
  return issues;
}

export function ahdsContentIssues(resource: Record<string, unknown>): AhdsIssue[] {
  const type = String(resource.resourceType);
  const info = typeInfo(type);
  if (!info) return [];
  const issues: AhdsIssue[] = [];
  if (resource.id !== undefined && !isValidFhirId(resource.id))
    issues.push({ stage: 'content', expression: `${type}.id`, message: 'Invalid id format.' });
  for (const [name, element] of info.required) {
    const present = info.namesOf.get(name)!.some((n) => resource[n] !== undefined && resource[n] !== null);
    if (!present)
      issues.push({ stage: 'content', expression: `${type}.${name}`, message: 'Element with minimum cardinality 1 cannot be null.' });
    void element;
  }
  for (const [key, value] of Object.entries(resource)) {
    const prop = info.properties.get(key);
    if (!prop || !isPrimitiveType(prop.typeCode) || key === 'id') continue;
    const regex = FHIR_FORMATS[prop.typeCode] ?? validationRegexes[prop.typeCode];
    for (const item of Array.isArray(value) ? value : [value]) {
      if (typeof item === 'string' && regex && !regex.test(item))
        issues.push({ stage: 'content', expression: `${type}.${key}`, message: `Invalid ${prop.typeCode} format.` });
    }
  }
  return issues;
}

/** The R4 specification's regexes of the primitive types (Firely checks these; some of Medplum's are looser). */
const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?';
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';
const FHIR_FORMATS: Record<string, RegExp> = {
  date: new RegExp(`^${YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`),
  dateTime: new RegExp(`^${YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T${TIME}${ZONE})?)?)?$`),
  instant: new RegExp(`^${YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T${TIME}${ZONE}$`),
  time: new RegExp(`^${TIME}$`),
  code: /^[^\s]+(\s[^\s]+)*$/,
  id: /^[A-Za-z0-9\-.]{1,64}$/,
};

/** Everything AHDS would refuse about one resource (all three stages); empty when it would store it. */
export function ahdsRefusals(resource: unknown): AhdsIssue[] {
  const parse = ahdsParseIssues(resource);
  if (!isObject(resource) || !typeInfo(String(resource.resourceType))) return parse;
  const r = resource;
  const div = isObject(r.text) ? r.text.div : undefined;
  return [
    ...parse,
    ...ahdsContentIssues(r),
    ...(typeof div === 'string' ? narrativeIssues(div, `${String(r.resourceType)}.text.div`) : []),
  ];
}

// ------------------------------------------------------------------------------------ parse

interface Property {
  element: InternalSchemaElement;
  /** Position of the element: two properties with one index are two forms of a choice. */
  index: number;
  typeCode: string;
  isArray: boolean;
}

interface TypeInfo {
  isResource: boolean;
  properties: Map<string, Property>;
  /** Elements with a minimum cardinality, by element name, with the property names that carry them. */
  required: Array<[string, InternalSchemaElement]>;
  namesOf: Map<string, string[]>;
}

const types = new Map<string, TypeInfo | null>();

/**
 * The FHIR type of an element of a type as written in JSON ("valueDateTime" of Extension is
 * dateTime, "participant" of Encounter is EncounterParticipant), or undefined when the definitions
 * do not know it. De-identification walks resources with it (deid-resource.ts).
 */
export function elementType(type: string, name: string): string | undefined {
  return typeInfo(type)?.properties.get(name)?.typeCode;
}

function typeInfo(type: string): TypeInfo | null {
  let info = types.get(type);
  if (info !== undefined) return info;
  info = null;
  try {
    const schema = getDataType(type);
    const properties = new Map<string, Property>();
    const required: TypeInfo['required'] = [];
    const namesOf = new Map<string, string[]>();
    Object.entries(schema.elements).forEach(([key, element], index) => {
      if (key.includes('.')) return;
      const last = element.path.slice(element.path.lastIndexOf('.') + 1);
      const names: string[] = [];
      for (const t of element.type ?? []) {
        const name = last.replace('[x]', capitalize(t.code));
        if (names.includes(name)) continue;
        names.push(name);
        if (!properties.has(name)) properties.set(name, { element, index, typeCode: t.code, isArray: !!element.isArray });
      }
      const elementName = last.replace('[x]', '');
      namesOf.set(elementName, names);
      if (element.min > 0) required.push([elementName, element]);
    });
    info = { isResource: schema.kind === 'resource', properties, required, namesOf };
  } catch {
    info = null;
  }
  types.set(type, info);
  return info;
}

const JS_TYPE: Record<string, 'string' | 'number' | 'boolean'> = {
  boolean: 'boolean',
  integer: 'number',
  positiveInt: 'number',
  unsignedInt: 'number',
  decimal: 'number',
  integer64: 'string',
};

function walk(obj: Record<string, unknown>, type: string, path: string, issues: AhdsIssue[], isRoot: boolean): void {
  const info = typeInfo(type);
  if (!info) {
    issues.push({ stage: 'parse', expression: path, message: 'Unknown type.' });
    return;
  }
  const seen = new Set<number>();
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'resourceType' && isRoot) continue;
    if (key.startsWith('_')) {
      // A primitive's id and extensions; only next to a primitive element.
      const prop = info.properties.get(key.slice(1));
      if (!prop || !isPrimitiveType(prop.typeCode))
        issues.push({ stage: 'parse', expression: `${path}.…`, message: 'Encountered an unknown element.' });
      continue;
    }
    const prop = info.properties.get(key);
    if (!prop) {
      issues.push({ stage: 'parse', expression: `${path}.…`, message: 'Encountered an unknown element.' });
      continue;
    }
    const where = `${path}.${key}`;
    if (seen.has(prop.index)) issues.push({ stage: 'parse', expression: where, message: 'Choice element has more than one type.' });
    seen.add(prop.index);
    if (value === null) {
      issues.push({ stage: 'parse', expression: where, message: 'Null is not a value.' });
      continue;
    }
    if (Array.isArray(value) !== prop.isArray) {
      issues.push({
        stage: 'parse',
        expression: where,
        message: prop.isArray ? 'Expected a list of values.' : 'Expected a single value, found a list.',
      });
      continue;
    }
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item, i) => {
      const at = Array.isArray(value) ? `${where}[${i}]` : where;
      if (item === null && Array.isArray(value)) return; // a placeholder for a `_x` entry
      if (isPrimitiveType(prop.typeCode)) {
        const expected = JS_TYPE[prop.typeCode] ?? 'string';
        if (typeof item !== expected) issues.push({ stage: 'parse', expression: at, message: `Expected a JSON ${expected}.` });
        return;
      }
      if (!isObject(item)) {
        issues.push({ stage: 'parse', expression: at, message: 'Expected a JSON object.' });
        return;
      }
      if (prop.typeCode === 'Resource') {
        const inner = item.resourceType;
        if (typeof inner !== 'string' || !typeInfo(inner)?.isResource)
          issues.push({ stage: 'parse', expression: at, message: 'The contained resource type is unknown.' });
        else walk(item, inner, at, issues, true);
        return;
      }
      walk(item, prop.typeCode, at, issues, false);
    });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// -------------------------------------------------------------------------------- narrative

/** NarrativeHtmlSanitizer.AllowedElements (FHIR Narrative.div). */
const ALLOWED_ELEMENTS = new Set(
  'a abbr acronym b big blockquote br caption cite code col colgroup dd dfn div dl dt em h1 h2 h3 h4 h5 h6 hr i img li ol p pre q samp small span strong sub sup table tbody td tfoot th thead tr tt ul var'.split(
    ' ',
  ),
);
/** NarrativeHtmlSanitizer.AllowedAttributes. */
const ALLOWED_ATTRIBUTES = new Set(
  'abbr accesskey align alt axis bgcolor border cellhalign cellpadding cellspacing cellvalign char charoff charset cite class colspan compact coords dir frame headers height href hreflang hspace id lang longdesc name nowrap rel rev rowspan rules scope shape span src start style summary tabindex title type valign value vspace width xml:lang xmlns'.split(
    ' ',
  ),
);
const ALLOWED_SRC = ['#', 'data:', 'http:', 'https:'];
const DANGEROUS_HREF = ['javascript:', 'vbscript:', 'data:', 'livescript:', 'file:', 'blob:', 'ftp:', 'ms-its:', 'mhtml:', 'jar:'];
const VOID = new Set(['br', 'hr', 'img', 'col', 'area', 'base', 'embed', 'input', 'link', 'meta', 'source', 'track', 'wbr', 'param']);

const TOKEN =
  /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<(\/?)([A-Za-z][A-Za-z0-9:_-]*)((?:\s+[^\s=>/"']+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*)\s*(\/?)>/g;
/** Browsers ignore leading control characters and spaces in attribute values (javascript: hides behind them). */
// eslint-disable-next-line no-control-regex
const LEADING_CONTROLS = /^[\x00-\x20]+/;
const ATTRIBUTE = /([^\s=>/"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?/g;

/**
 * The narrative checks of fhir-server's NarrativeHtmlSanitizer.Validate (messages from its
 * Resources.resx). A tokenizer, not a browser parser: anything it cannot read as a tag is a parse
 * error, which only errs toward refusing.
 */
export function narrativeIssues(html: string, expression = 'text.div'): AhdsIssue[] {
  const issue = (message: string): AhdsIssue => ({ stage: 'narrative', expression, message });
  const issues: AhdsIssue[] = [];
  const stack: string[] = [];
  let topLevel = 0;
  let textOutside = false;
  let innerContent = false;
  let last = 0;
  for (const m of html.matchAll(TOKEN)) {
    const between = html.slice(last, m.index);
    if (between.includes('<')) return [issue('Error while parsing XHTML: a tag could not be read.')];
    if (between.trim()) {
      if (stack.length === 0) textOutside = true;
      else innerContent = true;
    }
    last = m.index! + m[0].length;
    const [, closing, rawName, attrs = '', selfClosing] = m;
    if (!rawName) continue; // a comment or CDATA
    const name = rawName.toLowerCase();
    if (closing) {
      if (stack.pop() !== name) return [issue('Error while parsing XHTML: a closing tag does not match its opening tag.')];
      continue;
    }
    if (stack.length === 0) topLevel++;
    else innerContent = true;
    if (stack.length > 0 || name !== 'div') {
      if (!ALLOWED_ELEMENTS.has(name)) issues.push(issue(`Illegal element name '${name.slice(0, 20)}'.`));
    }
    for (const a of attrs.matchAll(ATTRIBUTE)) {
      const attr = a[1]!.toLowerCase();
      const value = (a[2] ?? '')
        .replace(/^["']|["']$/g, '')
        .replace(LEADING_CONTROLS, '')
        .toLowerCase();
      const illegal = `Illegal attribute name '${attr.slice(0, 20)}' on element '${name.slice(0, 20)}'.`;
      if (!ALLOWED_ATTRIBUTES.has(attr)) issues.push(issue(illegal));
      else if (attr === 'src' && !ALLOWED_SRC.some((s) => value.startsWith(s))) issues.push(issue(illegal));
      else if (attr === 'href' && DANGEROUS_HREF.some((s) => value.startsWith(s))) issues.push(issue(illegal));
    }
    if (!selfClosing && !VOID.has(name)) stack.push(name);
  }
  const tail = html.slice(last);
  if (tail.includes('<')) return [issue('Error while parsing XHTML: a tag could not be read.')];
  if (tail.trim()) textOutside = true;
  if (stack.length) return [issue('Error while parsing XHTML: an element is not closed.')];
  if (topLevel !== 1 || textOutside || !/^\s*<div[\s>/]/i.test(html))
    return [issue('XHTML content should be contained within a single <div> element.')];
  if (!innerContent) return [issue('The div element must not be empty or only whitespace.')];
  return issues;
}
