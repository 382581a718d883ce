import { startStack, type Stack, type StackOptions } from '../../stack';
import type { OpenEmrStandInStore } from '../../stack/openemr';
import { useStack } from './functions';
import { SUPPORTED_TYPES, type SupportedType } from '../../stack/openemr/resource-shape';
import { KNOWN_RESOURCE_TYPES, specOf } from '../../src/sync/resource-types';

/** Every type the OpenEMR stand-in serves and the connector carries, in reference order. */
export const DEID_TYPES = KNOWN_RESOURCE_TYPES.filter((t): t is SupportedType => (SUPPORTED_TYPES as readonly string[]).includes(t));

/** The settings of a de-identified feed of DEID_TYPES (scopes for each), four bundles of 100 at a time. */
export function deidFeedSettings(prefix: string, key: string): Record<string, string> {
  return {
    SYNC_TABLE_PREFIX: prefix,
    SYNC_RESOURCE_TYPES: DEID_TYPES.join(','),
    OPENEMR_SCOPES: [...DEID_TYPES.map((t) => specOf(t).read.scope), 'system/*.$export system/*.$bulkdata-status system/Binary.read'].join(
      ' ',
    ),
    DEID_MODE: 'on',
    DEID_KEY: key,
    SYNC_LAG_SECONDS: '5',
    AHDS_BATCH_SIZE: '100',
    AHDS_MAX_CONCURRENCY: '4',
  };
}

/** A stack whose connector settings are a de-identified feed, with free text added to the source. */
export async function startDeidFeed(
  prefix: string,
  key: string,
  options: StackOptions = {},
): Promise<{ stack: Stack; settings: Record<string, string> }> {
  const stack = await startStack({ azurite: true, ...options });
  const settings = deidFeedSettings(prefix, key);
  useStack(stack, settings);
  withFreeText(stack.openemr.store);
  return { stack, settings };
}

/** What the stand-in serves of DEID_TYPES: the source the audit compares the target with. */
export function servedSource(store: OpenEmrStandInStore): Array<Record<string, any>> {
  return DEID_TYPES.flatMap((t) => store.ids(t).map((id) => store.get(t, id) as Record<string, any>));
}

/** Ids of the resources withFreeText adds (UUID-shaped, as OpenEMR's). */
export const FREE_TEXT_IDS = { condition: 'd0d0d0d0-0000-4000-8000-000000000001', observation: 'd0d0d0d0-0000-4000-8000-000000000002' };

/**
 * Adds to the OpenEMR stand-in what the sample data lacks and a clinician writes: a Condition and an
 * Observation of the first Patient with narrative, notes, a reference display and an identifier,
 * each quoting the Patient's name, phone and street, so a de-identification audit has free text to
 * look for in every type it carries (OpenEMR fills Condition.note from the comments,
 * FhirConditionService.php, and narratives from its data).
 */
export function withFreeText(store: OpenEmrStandInStore): void {
  const condition = store.get('Condition', store.ids('Condition')[0]!) as Record<string, any>;
  const patientId = (condition.subject.reference as string).split('/').pop()!;
  const patient = store.get('Patient', patientId) as Record<string, any>;
  const who = `${patient.name[0].given[0]} ${patient.name[0].family}`;
  const phone = patient.telecom[0].value as string;
  const street = patient.address[0].line[0] as string;
  const narrative = (what: string) => ({
    status: 'generated',
    div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${what} of ${who}, ${street}</p></div>`,
  });
  const { meta: _c, ...conditionBody } = condition;
  store.put({
    ...conditionBody,
    id: FREE_TEXT_IDS.condition,
    resourceType: 'Condition',
    text: narrative('Problem list entry'),
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'PROB-778-4412' }],
    subject: { reference: `Patient/${patientId}`, display: who },
    note: [
      { authorString: 'Nurse Odalys Pennington', time: '2016-09-14T08:00:00+00:00', text: `${who} asked to be called back on ${phone}` },
    ],
  });
  const observation = store.get(
    'Observation',
    store
      .ids('Observation')
      .find(
        (id) => store.get('Observation', id)!.subject && (store.get('Observation', id) as any).subject.reference === `Patient/${patientId}`,
      )!,
  ) as Record<string, any>;
  const { meta: _o, ...observationBody } = observation;
  store.put({
    ...observationBody,
    id: FREE_TEXT_IDS.observation,
    resourceType: 'Observation',
    text: narrative('Measurement'),
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.6', value: 'LAB-ACC-55120' }],
    note: [{ text: `Drawn at home (${street}); ${who}'s daughter Marisol Quenby present` }],
  });
}
