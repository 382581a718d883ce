import type { ReadSlots } from './read-slots';

export interface ReadAheadLimits {
  /** Answers requested ahead of the consumer whatever their size. */
  minAhead: number;
  /** Answers requested ahead at most. */
  maxAhead: number;
  /**
   * Beyond `minAhead`, more are requested only while the answers waiting, and those still on their
   * way (counted at the mean size so far), hold fewer resources than this.
   */
  maxWaiting: number;
}

/** Per read slot about three answers ahead: at three reads, 5 always and up to 14 while fewer than 1,000 resources wait. */
export function readAheadLimits(readConcurrency: number): ReadAheadLimits {
  return { minAhead: readConcurrency + 2, maxAhead: 4 * readConcurrency + 2, maxWaiting: 1000 };
}

/**
 * Reads one answer per key (a page's Patients' Observations; a page's reads of every type, Patient
 * by Patient, rank by rank), in order, ahead of the consumer and
 * through the shared read slots. While the consumer waits on AHDS, small answers keep both reads
 * busy, so it finds the next ones ready instead of waiting a round trip for each. OpenEMR answers a
 * Patient's Observations all at once (no paging), so the look-ahead is bounded by the resources
 * waiting too: a Patient with years of labs stops it early and memory stays bounded.
 */
export class ReadAhead<T, K = string> {
  private readonly answers: Array<Promise<T[]>> = [];
  private taken = 0;
  /** Resources received and not yet taken. */
  private waiting = 0;
  private received = 0;
  private receivedResources = 0;

  constructor(
    private readonly ids: readonly K[],
    private readonly read: (id: K) => Promise<T[]>,
    private readonly slots: ReadSlots,
    private readonly limits: ReadAheadLimits,
  ) {
    this.fill();
  }

  /** The next answer; a failed read throws here, in order. */
  async next(): Promise<T[]> {
    const index = this.taken++;
    if (index >= this.ids.length) throw new Error('ReadAhead: every answer was taken');
    this.fill();
    const answer = await this.answers[index]!;
    this.answers[index] = Promise.resolve([]); // let the answer go
    this.waiting -= answer.length;
    this.fill();
    return answer;
  }

  private fill(): void {
    const { minAhead, maxAhead, maxWaiting } = this.limits;
    while (this.answers.length < this.ids.length) {
      const ahead = this.answers.length - this.taken;
      if (ahead >= maxAhead) return;
      if (ahead >= minAhead) {
        // Nothing received yet says how big answers are: no more than the minimum until one is.
        if (this.received === 0) return;
        const onTheWay = this.answers.length - this.received;
        if (this.waiting + onTheWay * (this.receivedResources / this.received) >= maxWaiting) return;
      }
      const id = this.ids[this.answers.length]!;
      const answer = this.slots
        .run(() => this.read(id))
        .then((list) => {
          this.waiting += list.length;
          this.received++;
          this.receivedResources += list.length;
          this.fill();
          return list;
        });
      answer.catch(() => undefined); // surfaced when taken
      this.answers.push(answer);
    }
  }
}
