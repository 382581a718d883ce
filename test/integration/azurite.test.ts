import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
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
