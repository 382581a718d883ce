/**
 * The mapping stage: terminology mapping (ConceptMaps), data fidelity (false codes, UCUM units,
 * references, vital-signs category and profile), the privacy filter, de-identification and
 * validation before write. Pure and deterministic; see mappings/README.md for the shipped maps.
 */
export { createResourceMapper } from './mapper';
export { UnmappedCodeReport, type UnmappedCodeEntry } from './report';
export type { MapOutcome, MappingOptions, ResourceMapper, UnmappedCoding } from './contract';
export { CIEL, LOINC, SNOMED, UCUM, isValidLoinc, isValidSnomedId } from './codes';
export { loadConceptMaps, readConceptMap, shippedMapFiles, shippedMapsDir } from './conceptmaps';
export { toUcum } from './units';
export { US_CORE_VITAL_SIGNS } from './vitals';
export { ensureDefinitionsIndexed } from './validate';
