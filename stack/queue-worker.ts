import { InvocationContext } from '@azure/functions';
import { QueueClient, type DequeuedMessageItem } from '@azure/storage-queue';
import { SETTINGS } from '../src/config/schema';

/**
 * The Functions host's queue trigger, for the local stack: polls each queue a function registered
 * with app.storageQueue and calls the handler as the host does (base64 JSON decoded, dequeueCount
 * in triggerMetadata). Success deletes the message; a failure makes it visible again after a short
 * wait, and the host's maxDequeueCount (5, host.json) ends it. Long handlers keep their message
 * hidden (renewed), as the host does.
 */
export type QueueHandler = (message: unknown, context: InvocationContext) => Promise<unknown>;

/** host.json extensions.queues.maxDequeueCount. */
const MAX_DEQUEUE_COUNT = 5;
const VISIBILITY_SECONDS = 60;

/** A queue name from a binding expression such as %SYNC_QUEUE_NAME% (the setting, else its default). */
export function resolveQueueName(expression: string, env: NodeJS.ProcessEnv = process.env): string {
  return expression.replace(
    /%([^%]+)%/g,
    (_m, name: string) => env[name]?.trim() || SETTINGS.find((s) => s.name === name)?.default || name,
  );
}

/** The message as the host hands it to a Node handler: JSON parsed when it is JSON, else the text. */
export function decodeHostMessage(messageText: string): unknown {
  const text = Buffer.from(messageText, 'base64').toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Delivers one received message to the handler; true when it succeeded (and was deleted). */
export async function deliver(
  queue: QueueClient,
  m: DequeuedMessageItem,
  handler: QueueHandler,
  options: { functionName: string; retryAfterSeconds?: number; log?: (line: string) => void },
): Promise<boolean> {
  const context = new InvocationContext({
    invocationId: `q-${m.messageId}-${m.dequeueCount}`,
    functionName: options.functionName,
    triggerMetadata: { dequeueCount: m.dequeueCount, id: m.messageId },
    logHandler: (level, ...args) =>
      options.log?.(`${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`),
  });
  let popReceipt = m.popReceipt;
  // Keeps the message hidden while a long handler (a full sync) works.
  const renew = setInterval(
    () => {
      queue
        .updateMessage(m.messageId, popReceipt, undefined, VISIBILITY_SECONDS)
        .then((r) => (popReceipt = r.popReceipt ?? popReceipt))
        .catch(() => undefined);
    },
    (VISIBILITY_SECONDS / 3) * 1000,
  );
  try {
    await handler(decodeHostMessage(m.messageText), context);
    clearInterval(renew);
    await queue.deleteMessage(m.messageId, popReceipt);
    return true;
  } catch (error) {
    clearInterval(renew);
    if (m.dequeueCount >= MAX_DEQUEUE_COUNT) {
      options.log?.(
        `${options.functionName}: message ${m.messageId} failed on delivery ${m.dequeueCount}; removed (the host would move it to the poison queue).`,
      );
      await queue.deleteMessage(m.messageId, popReceipt).catch(() => undefined);
    } else {
      options.log?.(
        `${options.functionName}: delivery ${m.dequeueCount} failed (${(error as Error)?.name ?? 'Error'}); it will be delivered again.`,
      );
      await queue.updateMessage(m.messageId, popReceipt, undefined, options.retryAfterSeconds ?? 1).catch(() => undefined);
    }
    return false;
  }
}

/**
 * Drains a queue once, the way the host would, until it is empty (a handler may enqueue more, as a
 * backfill run does): for the demo and the tests. A failed message is made visible again after
 * `retryAfterSeconds` (default at once). Answers how many handler calls succeeded and failed.
 */
export async function drainQueue(
  queue: QueueClient,
  handler: QueueHandler,
  options: { maxRounds?: number; retryAfterSeconds?: number; functionName?: string } = {},
): Promise<{ handled: number; failedCalls: number }> {
  let handled = 0;
  let failedCalls = 0;
  for (let round = 0; round < (options.maxRounds ?? 200); round++) {
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 16, visibilityTimeout: VISIBILITY_SECONDS });
    if (receivedMessageItems.length === 0) break;
    await Promise.all(
      receivedMessageItems.map(async (m) => {
        if (
          await deliver(queue, m, handler, {
            functionName: options.functionName ?? 'backfillQueue',
            retryAfterSeconds: options.retryAfterSeconds ?? 0,
          })
        )
          handled++;
        else failedCalls++;
      }),
    );
  }
  return { handled, failedCalls };
}

export interface QueueWorkers {
  close(): Promise<void>;
}

/** Polls every registered queue until closed: up to `batchSize` messages at a time (host.json: 4). */
export function startQueueWorkers(
  registrations: Array<{ name: string; options: Record<string, unknown> }>,
  options: { connectionString: string; batchSize?: number; idleMs?: number; log?: (line: string) => void },
): QueueWorkers {
  let closed = false;
  const loops = registrations.map(async (reg) => {
    const queue = new QueueClient(options.connectionString, resolveQueueName(String(reg.options.queueName ?? reg.name)));
    const handler = reg.options.handler as QueueHandler;
    await queue.createIfNotExists().catch(() => undefined);
    while (!closed) {
      let items: DequeuedMessageItem[] = [];
      try {
        items = (await queue.receiveMessages({ numberOfMessages: options.batchSize ?? 4, visibilityTimeout: VISIBILITY_SECONDS }))
          .receivedMessageItems;
      } catch {
        items = [];
      }
      if (items.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, options.idleMs ?? 300));
        continue;
      }
      await Promise.all(items.map((m) => deliver(queue, m, handler, { functionName: reg.name, log: options.log })));
    }
  });
  return {
    close: async () => {
      closed = true;
      await Promise.all(loops);
    },
  };
}
