/**
 * A huge event (say one a ring refuses as too large) must not stay pinned by the encoder or the
 * decoder once the caller lets go of it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { PageChangeEvent } from '../../src/shared/events.js';
import { FrameDecoder, FrameEncoder, readEvents } from '../../src/shared/framing.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  // WeakRefs are cleared only after the job that created them ends.
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
}

const BIG = 40 * 1024 * 1024;
const small: PageChangeEvent = { kind: 'page_added', pageId: 'p', sourceId: 's', extra: { v: 1 } };

describe('memory after a huge frame', () => {
  it('the encoder keeps neither the event nor a slab grown for it', async () => {
    const encoder = new FrameEncoder();
    encoder.encodeEvents(1, null, [small]);
    await collect();
    const before = process.memoryUsage().arrayBuffers;
    let ref: WeakRef<object> | undefined;
    let length = 0;
    (() => {
      const extra = { blob: `${'x'.repeat(BIG)}é` };
      ref = new WeakRef(extra);
      length = encoder.encodeEvents(1, null, [small, { ...small, extra, editDiff: 'y'.repeat(1000) }]).length;
    })();
    expect(length).toBeGreaterThan(BIG);
    encoder.encodeEvents(1, null, [small]);
    await collect();
    expect(ref!.deref()).toBeUndefined();
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(BIG / 4);
  });

  it('nor after a batch it refused half-way (a bad event after a huge one)', async () => {
    const encoder = new FrameEncoder();
    let ref: WeakRef<object> | undefined;
    (() => {
      const extra = { blob: 'x'.repeat(1024) };
      ref = new WeakRef(extra);
      const bad = { kind: 'page_exploded', pageId: 'p', sourceId: 's' } as unknown as PageChangeEvent;
      expect(() => encoder.encodeEvents(1, null, [{ ...small, extra, reason: 'r' }, bad])).toThrow(/events\[1\]\.kind/);
    })();
    await collect();
    expect(ref!.deref()).toBeUndefined();
  });

  it('the decoder drops a scratch buffer grown for a huge frame', async () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const huge = encoder.encodeEvents(1, null, [{ ...small, extra: { blob: 'x'.repeat(BIG) } }]);
    await collect();
    const before = process.memoryUsage().arrayBuffers;
    (() => {
      const copy = new Uint8Array(huge);
      expect(readEvents(decoder.decode(copy)[2])[0]!.extra!['blob']).toHaveLength(BIG);
    })();
    expect(readEvents(decoder.decode(encoder.encodeEvents(1, null, [small]))[2])).toStrictEqual([small]);
    await collect();
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(BIG / 4);
  });
});
