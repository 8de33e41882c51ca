/**
 * Coded errors, and their explicit serialisation across a real thread boundary: the class, code,
 * fields and cause chain must come back on the other side (structured clone alone keeps only the
 * message).
 */
import { describe, expect, it } from 'vitest';
import {
  ClosedError,
  ConvergeError,
  ErrorCode,
  FrameTooLargeError,
  ProtocolError,
  RingFullError,
  ValidationError,
  deserializeError,
  registerErrorClass,
  serializeError,
  type SerializedError,
} from '../../src/shared/errors.js';
import { expectedTarget, message, startFixture } from '../fixtures/ring/start.js';

describe('ConvergeError and subclasses', () => {
  it('carry a stable code, their class name and the cause', () => {
    const cause = new TypeError('bad input');
    const error = new ValidationError('predicate.edgeReach.root', 'must be set when maxHops > 0', { cause });
    expect(error).toBeInstanceOf(ConvergeError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'ValidationError', code: 'CONVERGE_VALIDATION', field: 'predicate.edgeReach.root', cause });
    expect(error.message).toBe('predicate.edgeReach.root: must be set when maxHops > 0');
    expect(error.issues).toEqual([{ path: 'predicate.edgeReach.root', message: 'must be set when maxHops > 0' }]);
    expect(new RingFullError(64, 8)).toMatchObject({ name: 'RingFullError', code: ErrorCode.RING_FULL, requestedBytes: 64, freeBytes: 8 });
    expect(new FrameTooLargeError(10, 4)).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE, frameBytes: 10, maxFrameBytes: 4 });
    expect(new ClosedError('ring')).toMatchObject({ code: 'CONVERGE_CLOSED', message: 'ring is closed' });
    expect(new ConvergeError('x').code).toBe('CONVERGE_UNKNOWN');
  });

  it('round-trip through serialise → structured clone → deserialise on one thread, keeping a registered custom class', () => {
    class QuotaError extends ConvergeError {
      constructor(readonly quota: number) {
        super(`quota ${quota} exceeded`, { code: 'APP_QUOTA' });
      }
    }
    registerErrorClass(QuotaError);
    const back = deserializeError(structuredClone(serializeError(new QuotaError(3))));
    expect(back).toBeInstanceOf(QuotaError);
    expect(back).toMatchObject({ name: 'QuotaError', code: 'APP_QUOTA', quota: 3, message: 'quota 3 exceeded' });
  });
});

describe('error serialisation across a real worker thread', () => {
  it('errors thrown in a worker come back with their class, code, fields and cause chain', async () => {
    const worker = startFixture('errors', { role: 'make' });
    const { errors, loadedFrom } = await message<{ errors: Record<string, SerializedError>; loadedFrom: string }>(worker, 'errors');
    await worker.terminate();
    expect(loadedFrom).toBe(expectedTarget);
    const back = Object.fromEntries(Object.entries(errors).map(([k, e]) => [k, deserializeError(e)]));

    expect(back.ringFull).toBeInstanceOf(RingFullError);
    expect(back.ringFull).toMatchObject({ name: 'RingFullError', code: 'CONVERGE_RING_FULL', requestedBytes: 32, freeBytes: 0 });
    expect(back.ringFull!.message).toMatch(/ring is full/);
    expect(back.ringFull!.stack).toMatch(/^RingFullError: ring is full/);

    expect(back.tooLarge).toBeInstanceOf(FrameTooLargeError);
    expect(back.tooLarge).toMatchObject({ code: 'CONVERGE_FRAME_TOO_LARGE', frameBytes: 29, maxFrameBytes: 28 });

    expect(back.validation).toBeInstanceOf(ValidationError);
    expect(back.validation).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'ringBytes' });
    expect((back.validation as ValidationError).issues[0]).toMatchObject({ path: 'ringBytes' });

    expect(back.closed).toBeInstanceOf(ClosedError);
    expect(back.closed).toMatchObject({ code: 'CONVERGE_CLOSED', message: 'ring is closed' });

    const chained = back.withCauses!;
    expect(chained).toBeInstanceOf(ProtocolError);
    expect(chained.cause).toBeInstanceOf(ValidationError);
    expect(chained.cause).toMatchObject({ field: 'event.pageId', code: 'CONVERGE_VALIDATION' });
    // A built-in cause comes back as its own class, with a code.
    const root = (chained.cause as Error).cause;
    expect(root).toBeInstanceOf(TypeError);
    expect(root).toMatchObject({ name: 'TypeError', message: 'not a string', code: 'CONVERGE_UNKNOWN' });

    expect(back.plain).toBeInstanceOf(RangeError);
    expect(back.plain).toMatchObject({ name: 'RangeError', message: 'plain error', code: 'CONVERGE_UNKNOWN' });
    expect(back.thrownString).toMatchObject({ message: 'just a string', code: 'CONVERGE_UNKNOWN' });
  });

  it('built-in errors thrown in a worker keep their class, message, code, cause and stack (DESIGN §3)', async () => {
    const worker = startFixture('errors', { role: 'make' });
    const { errors } = await message<{ errors: Record<string, SerializedError> }>(worker, 'errors');
    await worker.terminate();
    const back = (key: string): Error & { code: string } => deserializeError(errors[key]!);
    const cases: [string, new (...args: never[]) => Error][] = [
      ['typeError', TypeError],
      ['syntaxError', SyntaxError],
      ['referenceError', ReferenceError],
      ['uriError', URIError],
      ['evalError', EvalError],
      ['aggregateError', AggregateError],
      ['codedError', Error],
      ['plain', RangeError],
    ];
    for (const [key, cls] of cases) {
      const error = back(key);
      expect(error, key).toBeInstanceOf(cls);
      expect(error, key).toBeInstanceOf(Error);
      expect(error, key).not.toBeInstanceOf(ConvergeError);
      expect(Object.getPrototypeOf(error), key).toBe(cls.prototype);
      expect(error.name, key).toBe(cls.name);
      expect(error.message, key).toBe(errors[key]!.message);
      expect(error.stack, key).toBe(errors[key]!.stack);
      expect(error.stack, key).toMatch(new RegExp(`^${cls.name}: `));
    }
    expect(back('typeError').message).toMatch(/null/);
    expect(back('syntaxError').code).toBe('CONVERGE_UNKNOWN');
    expect(back('referenceError').message).toMatch(/notDefinedAnywhere/);
    expect(back('aggregateError').message).toBe('several failed');
    // The inner errors survive too, each with its class and code (they were lost before).
    const inner = (back('aggregateError') as unknown as AggregateError).errors as (Error & { code: string })[];
    expect(inner).toHaveLength(3);
    expect(inner[0]).toBeInstanceOf(Error);
    expect(inner[0]).toMatchObject({ message: 'inner', code: 'CONVERGE_UNKNOWN' });
    expect(inner[1]).toBeInstanceOf(TypeError);
    expect(inner[1]).toMatchObject({ message: 'second', code: 'E_SECOND' });
    expect(inner[2]).toMatchObject({ message: 'a string', code: 'CONVERGE_UNKNOWN' });
    expect(Object.keys(back('aggregateError'))).not.toContain('errors');
    // A thrown non-Error keeps the code and message it carried.
    expect(back('thrownObject')).toMatchObject({ message: 'quota exceeded', code: 'E_QUOTA' });
    const coded = back('codedError');
    expect(coded).toMatchObject({ message: 'no such file', code: 'ENOENT', path: '/nowhere' });
    expect(coded.cause).toBeInstanceOf(RangeError);
    expect(coded.cause).toMatchObject({ message: 'too far', code: 'CONVERGE_UNKNOWN' });
    // And the trip back keeps them: serialise the rebuilt error again.
    expect(deserializeError(serializeError(coded))).toBeInstanceOf(Error);
    expect(deserializeError(serializeError(back('uriError')))).toBeInstanceOf(URIError);
    // An unknown class name still comes back as a coded ConvergeError.
    expect(deserializeError({ name: 'WeirdError', code: 'APP_WEIRD', message: 'w' })).toBeInstanceOf(ConvergeError);
  });

  it('errors sent to a worker are rebuilt there with their class, and survive the trip back', async () => {
    const worker = startFixture('errors', { role: 'check' });
    await message(worker, 'ready');
    const sent = new ValidationError('events[3].kind', 'unknown kind', { cause: new RingFullError(40, 4) });
    const reply = message<Record<string, unknown> & { reserialized: SerializedError }>(worker, 'checked');
    worker.postMessage({ serialized: serializeError(sent) });
    const seen = await reply;
    await worker.terminate();
    expect(seen).toMatchObject({
      loadedFrom: expectedTarget,
      isConvergeError: true,
      isValidationError: true,
      isRingFullError: false,
      name: 'ValidationError',
      code: 'CONVERGE_VALIDATION',
      message: 'events[3].kind: unknown kind',
      field: 'events[3].kind',
      issues: [{ path: 'events[3].kind', message: 'unknown kind' }],
      causeIsRingFull: true,
      causeRequestedBytes: 40,
    });
    const home = deserializeError(seen.reserialized);
    expect(home).toBeInstanceOf(ValidationError);
    expect(home.cause).toBeInstanceOf(RingFullError);
    expect(home).toMatchObject({ field: 'events[3].kind', code: 'CONVERGE_VALIDATION' });
  });
});

describe('FrameTooLargeError names the input', () => {
  it('carries the field of the event that made the frame, also across a thread boundary', () => {
    const error = new FrameTooLargeError(100_000_000, 4_194_300, { field: 'events[7]' });
    expect(error).toMatchObject({ field: 'events[7]', frameBytes: 100_000_000, code: 'CONVERGE_FRAME_TOO_LARGE' });
    expect(error.message).toMatch(/^events\[7\]: /);
    expect(deserializeError(serializeError(error))).toMatchObject({ field: 'events[7]', code: 'CONVERGE_FRAME_TOO_LARGE' });
    expect(new FrameTooLargeError(10, 5).field).toBeUndefined();
  });
});
