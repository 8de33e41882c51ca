import { describe, expect, it } from 'vitest';
import { ProtocolError, ValidationError } from '../../src/shared/errors.js';
import {
  ConvergenceDispatchProtocol,
  ConvergenceQuiescenceProtocol,
  PAGE_CHANGE_KINDS,
  PageChange,
  PageChangeEventSchema,
  isWellFormedEvent,
  validateEvent,
  validateEvents,
} from '../../src/shared/events.js';

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('PageChange factories', () => {
  it('build each kind with its related ids, a default sourceId, and the init fields', () => {
    expect(PageChange.added('file:a.ts', { dataType: 'design_monorepo_file', extra: { value: 1 } })).toStrictEqual({
      kind: 'page_added',
      pageId: 'file:a.ts',
      sourceId: 'manual',
      dataType: 'design_monorepo_file',
      extra: { value: 1 },
    });
    expect(PageChange.replaced('old', 'new', { sourceId: 'git:x@1', ts: 5 })).toStrictEqual({ kind: 'page_replaced', pageId: 'new', related: ['old'], sourceId: 'git:x@1', ts: 5 });
    expect(PageChange.invalidated('p', 'gone')).toStrictEqual({ kind: 'page_invalidated', pageId: 'p', sourceId: 'manual', reason: 'gone' });
    expect(PageChange.invalidated('p')).toStrictEqual({ kind: 'page_invalidated', pageId: 'p', sourceId: 'manual' });
    expect(PageChange.edgeAdded('a', 'b', 'imports')).toStrictEqual({ kind: 'page_graph_edge_added', pageId: 'a', related: ['b'], edgeType: 'imports', sourceId: 'manual' });
    expect(PageChange.edgeRemoved('a', 'b')).toStrictEqual({ kind: 'page_graph_edge_removed', pageId: 'a', related: ['b'], sourceId: 'manual' });
  });

  it('every event a factory builds passes the schema', () => {
    for (const event of [PageChange.added('a'), PageChange.replaced('a', 'b'), PageChange.invalidated('a', 'r'), PageChange.edgeAdded('a', 'b'), PageChange.edgeRemoved('a', 'b')]) {
      expect(PageChangeEventSchema.safeParse(event).success).toBe(true);
      expect(PAGE_CHANGE_KINDS).toContain(event.kind);
    }
  });

  it('refuse an init key they do not take, name it, and drop undefined init fields', () => {
    expect(validationError(() => PageChange.added('a', { sourceID: 'typo' } as never)).message).toContain('sourceID');
    expect(validationError(() => PageChange.added('a', null as never)).field).toBe('init');
    expect(PageChange.added('a', { dataType: undefined, sourceId: 's' })).toStrictEqual({ kind: 'page_added', pageId: 'a', sourceId: 's' });
    expect(PageChange.invalidated('a', 'arg', { reason: 'init' }).reason).toBe('arg');
    expect(PageChange.edgeAdded('a', 'b', undefined, { edgeType: 'init' }).edgeType).toBe('init');
  });

  it('validate their input and name the offending field', () => {
    expect(validationError(() => PageChange.added('')).field).toBe('event.pageId');
    expect(validationError(() => PageChange.replaced('', 'new')).field).toBe('event.related[0]');
    expect(validationError(() => PageChange.added('a', { sourceId: '' })).field).toBe('event.sourceId');
    expect(validationError(() => PageChange.added('a', { ts: -1 })).field).toBe('event.ts');
  });
});

describe('validateEvent / validateEvents', () => {
  const ok = { kind: 'page_added', pageId: 'a', sourceId: 's' };

  it('returns a valid event', () => {
    expect(validateEvent(ok)).toStrictEqual(ok);
    // A page replaced in place needs no `related` (DESIGN types it optional); an edge does.
    const inPlace = { ...ok, kind: 'page_replaced', extra: { value: 2 } };
    expect(validateEvent(inPlace)).toStrictEqual(inPlace);
    expect(isWellFormedEvent(inPlace)).toBe(true);
    expect(validateEvents([ok, ok])).toHaveLength(2);
    expect(validateEvents(ok)).toStrictEqual([ok]);
  });

  it.each([
    [{ ...ok, pageId: '' }, 'event.pageId', /non-empty/],
    [{ ...ok, pageId: 42 }, 'event.pageId', /string/],
    [{ ...ok, sourceId: undefined }, 'event.sourceId', /./],
    [{ ...ok, kind: 'page_exploded' }, 'event.kind', /page_added/],
    [{ ...ok, kind: 'page_graph_edge_added' }, 'event.related', /targetId/],
    [{ ...ok, related: ['x', ''] }, 'event.related[1]', /non-empty/],
    [{ ...ok, ts: -1 }, 'event.ts', /0/],
    [{ ...ok, ts: Number.POSITIVE_INFINITY }, 'event.ts', /./],
    [{ ...ok, extra: 'no' }, 'event.extra', /object|record/],
    [null, 'event', /object/],
  ])('%j → ValidationError at %s', (input, field, message) => {
    const error = validationError(() => validateEvent(input));
    expect(error.field).toBe(field);
    expect(error.code).toBe('CONVERGE_VALIDATION');
    expect(error.message).toMatch(message);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.issues[0]?.path).toBe(field);
  });

  it('rejects unknown fields (the schema is strict) and says which', () => {
    const error = validationError(() => validateEvent({ ...ok, pageID: 'typo' }));
    expect(error.field.startsWith('event')).toBe(true);
    expect(error.message).toContain('pageID');
  });

  it('names the index of the bad event in a batch, and lists every issue', () => {
    const error = validationError(() => validateEvents([ok, ok, { ...ok, kind: 'nope', pageId: '' }]));
    expect(error.field).toMatch(/^events\[2\]\.(kind|pageId)$/);
    expect(error.issues.map((i) => i.path).sort()).toEqual(['events[2].kind', 'events[2].pageId']);
  });
});

describe('protocol keys', () => {
  it('dispatch keys round-trip and reject the wrong prefix or an empty id', () => {
    expect(ConvergenceDispatchProtocol.dispatchKey('sub_1')).toBe('convergence:dispatch:sub_1');
    expect(ConvergenceDispatchProtocol.dispatchPattern()).toBe('convergence:dispatch:*');
    expect(ConvergenceDispatchProtocol.parseDispatchKey('convergence:dispatch:sub_1')).toBe('sub_1');
    expect(() => ConvergenceDispatchProtocol.parseDispatchKey('convergence:quiescence:ep')).toThrow(ProtocolError);
    expect(() => ConvergenceDispatchProtocol.parseDispatchKey('convergence:dispatch:')).toThrow(ProtocolError);
    expect(validationError(() => ConvergenceDispatchProtocol.dispatchKey('')).field).toBe('subscriptionId');
  });

  it('quiescence keys round-trip and reject the wrong prefix or an empty id', () => {
    expect(ConvergenceQuiescenceProtocol.quiescenceKey('ep_1')).toBe('convergence:quiescence:ep_1');
    expect(ConvergenceQuiescenceProtocol.quiescencePattern()).toBe('convergence:quiescence:*');
    expect(ConvergenceQuiescenceProtocol.parseQuiescenceKey('convergence:quiescence:ep_1')).toBe('ep_1');
    expect(() => ConvergenceQuiescenceProtocol.parseQuiescenceKey('convergence:dispatch:x')).toThrow(expect.objectContaining({ code: 'CONVERGE_PROTOCOL' }));
    expect(validationError(() => ConvergenceQuiescenceProtocol.quiescenceKey('')).field).toBe('episodeId');
  });
});
