/**
 * The main thread parks on MainSlot.WAKE with Atomics.waitAsync; the convergence worker, having
 * taken PARKED from 1 to 0 after writing dispatch frames, bumps WAKE and notifies. No MessagePort
 * message is involved: a frame written the worker's way is handled without anyone calling wake().
 */
import { describe, expect, it } from 'vitest';
import type { PageChangeEvent } from '../../src/shared/events.js';
import { eventToTuple, FrameEncoder, packDispatchGroups } from '../../src/shared/framing.js';
import { DispatchTag, MainSlot } from '../../src/shared/protocol.js';
import { Ring, RingProducer } from '../../src/shared/ring.js';
import { testDispatcher } from '../helpers/dispatcher.js';

/** What the worker does after writing dispatch frames (convergence-loop.ts `wakeMain`). */
function wakeMain(flags: Int32Array): boolean {
  if (Atomics.exchange(flags, MainSlot.PARKED, 0) !== 1) return false;
  Atomics.add(flags, MainSlot.WAKE, 1);
  Atomics.notify(flags, MainSlot.WAKE);
  return true;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('MainDispatcher wake through MainSlot.WAKE', () => {
  it('parks, is woken by a notify, drains, and parks again — for wake after wake', async () => {
    const flags = new Int32Array(new SharedArrayBuffer(MainSlot.SIZE * 4));
    const dispatchRing = new Ring(Ring.allocate(64 * 1024));
    const writer = new RingProducer(dispatchRing);
    const received: string[] = [];
    const d = testDispatcher(flags, { dispatchRing });
    d.register(1, 'sub_1', (event) => void received.push(event.pageId));
    expect(Atomics.load(flags, MainSlot.PARKED)).toBe(1);
    const encoder = new FrameEncoder();
    let dispatchId = 1;
    for (let round = 0; round < 20; round++) {
      const event: PageChangeEvent = { kind: 'page_added', pageId: `p${round}`, sourceId: 's', ts: 1 };
      const packed = packDispatchGroups([[eventToTuple(event), [1]]]);
      await writer.write(encoder.encodeDispatch([DispatchTag.DISPATCH, 'ep', dispatchId++, packed.groups, packed.events]));
      // The main thread said it was parked: this wake is the only thing that can make it drain.
      await until(() => Atomics.load(flags, MainSlot.PARKED) === 1, `the dispatcher to park (round ${round})`);
      expect(wakeMain(flags)).toBe(true);
      await until(() => received.length === round + 1, `dispatch ${round}`);
    }
    expect(received).toEqual(Array.from({ length: 20 }, (_, i) => `p${i}`));
    d.stop();
  });
});
