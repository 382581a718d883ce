import { TableClient } from '@azure/data-tables';
import { TableLeaseManager } from '../../src/state/lease';
import { startAzurite, type AzuriteHandle } from '../../stack/azurite';

let azurite: AzuriteHandle;
let table: TableClient;
beforeAll(async () => {
  azurite = await startAzurite();
  table = TableClient.fromConnectionString(azurite.connectionString, 'leaseracetest', { allowInsecureConnection: true });
  await table.createTable();
});
afterAll(() => azurite?.close());

test('renewals racing each other (timer and assertHeld) never lose the lease to its own holder', async () => {
  const manager = new TableLeaseManager(async () => table, 60);
  const got = await manager.acquire('race', 'runner-1');
  if (!got.acquired) throw new Error('expected the lease');
  const results = await Promise.all(Array.from({ length: 10 }, () => got.handle.renew()));
  expect(results).toEqual(Array(10).fill(true));
  await expect(got.handle.assertHeld()).resolves.toBeUndefined();
  expect(got.handle.lost).toBe(false);
  await got.handle.release();
});

test('a renewal whose ETag moved under it, while the row still names its holder, keeps the lease', async () => {
  const manager = new TableLeaseManager(async () => table, 60);
  const got = await manager.acquire('moved', 'runner-1');
  if (!got.acquired) throw new Error('expected the lease');
  // As if an earlier renewal was applied but its answer was lost: the row changed, the owner did not.
  const row = await table.getEntity<Record<string, unknown>>('lease', 'moved');
  await table.updateEntity({ ...row, partitionKey: 'lease', rowKey: 'moved' }, 'Replace');
  await expect(got.handle.renew()).resolves.toBe(true);
  // Someone else taking the row does lose it.
  await table.updateEntity(
    { partitionKey: 'lease', rowKey: 'moved', owner: 'runner-2', expiresAt: new Date(Date.now() + 60_000).toISOString() },
    'Replace',
  );
  await expect(got.handle.renew()).resolves.toBe(false);
  expect(got.handle.lost).toBe(true);
});
