import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { TableDeadLetterStore, TableUnmappedCodeStore } from '../../src/state';
import type { DeadLetter } from '../../src/sync/dead-letters';
import { startAzurite, type AzuriteHandle } from '../../stack/azurite';

let azurite: AzuriteHandle;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(() => azurite?.close());

test('Azurite runs in memory on free ports and serves tables and queues to the real SDK clients', async () => {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'probe', { allowInsecureConnection: true });
  await table.createTable();
  await table.upsertEntity({ partitionKey: 'p', rowKey: 'r', value: 1 });
  expect((await table.getEntity<{ value: number }>('p', 'r')).value).toBe(1);

  const queue = new QueueClient(azurite.connectionString, 'probe');
  await queue.create();
  await queue.sendMessage(Buffer.from('hello').toString('base64'));
  const received = await queue.receiveMessages();
  expect(Buffer.from(received.receivedMessageItems[0]!.messageText, 'base64').toString()).toBe('hello');
});

test('dead letters go to the table in transactions per resource type, a later failure of a resource replacing the earlier one, and read back by key', async () => {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'deadletterbatches', { allowInsecureConnection: true });
  await table.createTable();
  const store = new TableDeadLetterStore(async () => table);
  const letter = (resourceType: string, id: string, reason: string): DeadLetter => ({
    resourceType,
    id,
    stage: 'write',
    status: 422,
    reason,
    attempts: 1,
    at: '2026-01-01T00:00:00.000Z',
    runId: 'run-1',
    operation: 'test',
  });
  // 250 Observations (three transactions), 30 Patients, and one Observation failing twice in the same call.
  const items = [
    ...Array.from({ length: 250 }, (_, i) => letter('Observation', `o-${i}`, 'first')),
    ...Array.from({ length: 30 }, (_, i) => letter('Patient', `p-${i}`, 'patient')),
    letter('Observation', 'o-7', 'second'),
  ];
  await store.record(items);
  const stored = await store.list();
  expect(stored).toHaveLength(280);
  expect(stored.filter((d) => d.resourceType === 'Patient')).toHaveLength(30);
  expect(stored.find((d) => d.id === 'o-7')?.reason).toBe('second');
  expect(stored.find((d) => d.id === 'o-8')).toEqual(letter('Observation', 'o-8', 'first'));
  // Point reads, as a replay by id does them.
  expect(await store.get('Observation', 'o-7')).toEqual(letter('Observation', 'o-7', 'second'));
  expect(await store.get('Patient', 'o-7')).toBeUndefined();
});

test('dead-letter ids are read per type (keys only), and removal goes in transactions, keys already gone included', async () => {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'deadletterremoval', { allowInsecureConnection: true });
  await table.createTable();
  const store = new TableDeadLetterStore(async () => table);
  const letter = (resourceType: string, id: string): DeadLetter => ({
    resourceType,
    id,
    stage: 'write',
    status: 422,
    reason: 'r',
    attempts: 1,
    at: '2026-01-01T00:00:00.000Z',
    runId: 'run-1',
    operation: 'test',
  });
  await store.record([
    ...Array.from({ length: 230 }, (_, i) => letter('Observation', `o-${i}`)),
    ...Array.from({ length: 3 }, (_, i) => letter('Patient', `p-${i}`)),
  ]);
  expect((await store.ids('Patient', 10)).sort()).toEqual(['p-0', 'p-1', 'p-2']);
  expect(await store.ids('Observation', 50)).toHaveLength(50);

  // 220 Observations (three transactions), one of them twice, plus two keys that were never there.
  const keys = [
    ...Array.from({ length: 220 }, (_, i) => ({ resourceType: 'Observation', id: `o-${i}` })),
    { resourceType: 'Observation', id: 'o-5' },
    { resourceType: 'Observation', id: 'gone' },
    { resourceType: 'Patient', id: 'p-1' },
    { resourceType: 'Patient', id: 'gone' },
  ];
  await store.remove(keys);
  expect((await store.ids('Observation', 1000)).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `o-${220 + i}`).sort());
  expect((await store.ids('Patient', 10)).sort()).toEqual(['p-0', 'p-2']);
  await store.remove(Array.from({ length: 5 }, (_, i) => ({ resourceType: 'Observation', id: `o-${220 + i}` })));
  expect(await store.ids('Observation', 1000)).toHaveLength(5);
});

test('unmapped-code counts added by many workers at once all add up', async () => {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'unmappedrace', { allowInsecureConnection: true });
  await table.createTable();
  const store = new TableUnmappedCodeStore(async () => table);
  const codes = ['5085', '5086', '5087'].map((code) => ({ system: 'https://cielterminology.org', code, count: 1 }));
  await Promise.all(Array.from({ length: 16 }, () => store.add(codes)));
  expect((await store.list()).map((c) => [c.code, c.count]).sort()).toEqual([
    ['5085', 16],
    ['5086', 16],
    ['5087', 16],
  ]);
});
