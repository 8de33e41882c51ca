/**
 * The public API of converge-engine. Explicit named exports only: what is not listed here is not
 * public. Worker entries are never exported; they are loaded by path.
 */

// The engine.
export { createEngine, Engine } from './engine.js';
export type { ContextPageSource, DispatchChangeOptions, EngineEvents, EngineStatus, SubscribeOptions, Subscription } from './engine.js';
export { ENGINE_DEFAULTS, ENGINE_LIMITS, resolveEngineOptions } from './options.js';
export type { EngineOptions, ResolvedEngineOptions } from './options.js';
export { EngineScope, SCOPE_FORMAT_VERSION } from './scope.js';
export type { SerializedScope } from './scope.js';
export type { Dispatch, DispatchErrorInfo, SubscriptionHandler } from './dispatcher.js';
export type { TaskPoolOptions, TaskPoolStats } from './task-pool.js';
export type {
  BudgetExhaustedInfo,
  ChangeFeedEntry,
  EngineCounters,
  EngineState,
  QuiescenceReport,
  SkippedReason,
} from '../shared/protocol.js';

// Events and protocol keys.
export {
  ConvergenceDispatchProtocol,
  ConvergenceQuiescenceProtocol,
  PAGE_CHANGE_KINDS,
  PageChange,
  PageChangeEventSchema,
  validateEvent,
} from '../shared/events.js';
export type { PageChangeEvent, PageChangeInit, PageChangeKind } from '../shared/events.js';

// Input rules (shared-input): the hot path's event check, plain data.
export { isWellFormedEvent } from '../shared/events.js';
export { MAX_PLAIN_DEPTH, plainObjectProblem } from '../shared/validation.js';
export type { PlainDataProblem } from '../shared/validation.js';
export type { RingStallInfo } from '../shared/protocol.js';

// Pure convergence logic, for single-threaded use.
export {
  compilePredicate,
  DEFAULT_TOLERANCE_EPSILON,
  matchesPredicate,
  NumericToleranceSchema,
  PagePredicateSchema,
  validatePredicate,
  validateTolerance,
} from '../shared/predicates.js';
export type { CompiledPredicate, EdgeReach, NumericTolerance, PagePredicate } from '../shared/predicates.js';
export { DEFAULT_SUBSCRIPTION_CAPACITY, SubscriptionIndex } from '../shared/subscription-index.js';
export type { IndexedSubscription, SubscriptionIndexOptions } from '../shared/subscription-index.js';
export { ConvergenceDamper } from '../shared/damper.js';
export { WriteRateLimiter } from '../shared/rate-limiter.js';
export type { WriteRateLimiterOptions } from '../shared/rate-limiter.js';
export { PageGraph } from '../shared/page-graph.js';
export type { PageGraphOptions } from '../shared/page-graph.js';
export { DEFAULT_MAX_CYCLES, findCycles, predicatesMayOverlap } from '../shared/cycles.js';
export type { FindCyclesOptions } from '../shared/cycles.js';

// The data plane, for embedders that build their own producers.
export { Ring, RingConsumer, RingProducer } from '../shared/ring.js';
export type { OnFull, RingConsumerOptions, RingProducerOptions, RingStats, StalledReservation } from '../shared/ring.js';
export { FrameDecoder, FrameEncoder } from '../shared/framing.js';

// Errors.
export {
  ClosedError,
  ConvergeError,
  deserializeError,
  DuplicateIdError,
  ErrorCode,
  FrameTooLargeError,
  InvalidStateError,
  NotAuthorizedError,
  NotFoundError,
  ProtocolError,
  RingFullError,
  serializeError,
  StaticSourceError,
  StoreError,
  SubscriptionRegistryFullError,
  TimeoutError,
  ValidationError,
  WorkerCrashedError,
} from '../shared/errors.js';
export type { SerializedError, ValidationIssue } from '../shared/errors.js';

// Jobs (DESIGN §6): deterministic multi-agent jobs, and many of them across processes.
export { ConvergeJob, JOB_TIERS } from './job.js';
export type {
  AgentFailure,
  AgentRunTrace,
  ConvergeJobOptions,
  JobAgentDefinition,
  JobResolverDefinition,
  JobResult,
  JobRunOptions,
  JobStatus,
  JobTier,
  JobTrace,
  ResolverRunTrace,
  RoundTrace,
  TracedError,
  TracedJob,
} from './job.js';
export { applyDominance, canonicalJson, DOMINANCE_RULES } from './job-merge.js';
export type { ConflictClaim, ConflictResolution, Dominance, DominanceRule, JobConflict, JobContext, JobEffect, RejectedEffect } from './job-merge.js';
export { BREAKER_DEFAULTS, CircuitBreaker, TOOL_DEFAULTS } from './job-tools.js';
export type {
  BackoffOptions,
  CircuitBreakerOptions,
  CircuitState,
  JobClock,
  ToolAttemptTrace,
  ToolCallContext,
  ToolCallTrace,
  ToolDefinition,
  ToolHandler,
} from './job-tools.js';
export { JobQueue, runJobs } from './job-queue.js';
export type { JobAgentSpec, JobQueueOptions, JobRecord, JobRunnerEvent, JobSpec, JobToolSpec, RunJobsOptions, RunJobsSummary, StoredJobResult } from './job-queue.js';
export { jobSubscription } from './job-subscription.js';
export type { JobSubscriptionEngine, JobSubscriptionOptions } from './job-subscription.js';
export { jobWorkerEntry, PiscinaJobPool } from './job-pool.js';
export type { JobAgentPool, JobPoolOptions } from './job-pool.js';
export { AgentFailedError, JobCancelledError, JobErrorCode, ReplayDivergedError, TOOL_FAILURE_CLASSES, ToolCallError } from '../shared/job-protocol.js';
export type { JobAgentOutcome, JobAgentTask, ToolFailureClass } from '../shared/job-protocol.js';

// Colony (DESIGN §6): the pool, its event bus, and the worker contract.
export { Colony, COLONY_DEFAULTS } from './colony.js';
export type {
  ColonyEngine,
  ColonyEvents,
  ColonyOptions,
  ColonyStats,
  OverseerHandle,
  TriggerDefinition,
  TriggerType,
  WorkerInfo,
  WorkerReport,
  WorkerStatus,
} from './colony.js';
export { EventBus, EVENT_BUS_DEFAULTS } from './event-bus.js';
export type {
  BusEvent,
  EventBusOptions,
  EventBusStats,
  EventFilter,
  EventMap,
  EventSubscriptionInput,
  HistoryQuery,
  PublishInput,
  WaitForOptions,
} from './event-bus.js';
export { TASK_POOL_DEFAULTS, TASK_TOPIC } from './task-pool.js';
export type { PoolTaskHandle, SharedTaskPayload } from './task-pool.js';
export { runTaskWorker, TASK_WORKER_DEFAULTS } from './colony-worker.js';
export type { TaskWorker, TaskWorkerOptions } from './colony-worker.js';
export type { ColonyWorkerContext, ColonyWorkerResult, TaskContext, TaskDispatch } from '../shared/pool-protocol.js';

// Sources and watchers (DESIGN §4).
export type { MappedSource } from './source-bridge.js';
export { NO_WATCH_CONTEXT, WORKER_HOSTED } from '../watchers/source.js';
export type { PageRecord, WatchContext } from '../watchers/source.js';
export { LOCAL_FS_DEFAULTS, LocalFsWatcher } from '../watchers/local-fs-watcher.js';
export type { LocalFsWatcherOptions } from '../watchers/local-fs-watcher.js';
export { WEBHOOK_PROVIDERS, WebhookEventBuilder } from '../watchers/webhook-event-builder.js';
export type { WebhookEventOptions, WebhookProvider } from '../watchers/webhook-event-builder.js';
export { WEBHOOK_DEFAULTS, WebhookReceiver, WebhookSource } from '../watchers/webhook-receiver.js';
export type { WebhookReceiverOptions, WebhookRouteOptions } from '../watchers/webhook-receiver.js';
export { diffSnapshots, SourcePollWatcher } from '../watchers/source-poll-watcher.js';
export type { SourcePollWatcherOptions } from '../watchers/source-poll-watcher.js';
export { CompositeWatcher } from '../watchers/composite-watcher.js';
export type { CompositeWatcherOptions } from '../watchers/composite-watcher.js';
export { GitRemoteWatcher, gitChangeEvents } from '../watchers/git-remote-watcher.js';
export type { GitRemoteWatcherOptions, LeaderGate } from '../watchers/git-remote-watcher.js';
export { GitRepoSource } from '../watchers/git-repo-source.js';
export type { GitRepoSourceOptions } from '../watchers/git-repo-source.js';
export { CHECKPOINT_TAG_PREFIX, GitCheckpointer } from '../watchers/checkpoint.js';
export type { GitCheckpointerOptions } from '../watchers/checkpoint.js';
export { BlackboardSource } from '../watchers/blackboard-source.js';
export type { BlackboardRelation, BlackboardSourceOptions } from '../watchers/blackboard-source.js';
export { editDiff } from '../watchers/edit-diff.js';
export { CheckpointError, GitFetchError, SourceError, SourceNotFoundError, WatcherBackendError, WatcherErrorCode } from '../watchers/errors.js';
