/**
 * Public API of the coordination layer (DESIGN §5): tasks and their stores, pools, and the
 * negotiation, consensus, bidding and delegation protocols. Explicit exports only.
 */
export { TaskManager } from './task-manager.js';
export type { TaskManagerOptions, SubmitTaskInput, AgentTaskListOptions, HolderOptions, FailTaskOptions } from './task-manager.js';
export { TASK_STATES, TERMINAL_STATES, isTerminalState, isVisible, compareClaimOrder } from './task.js';
export type { Task, TaskState, TaskFilter, NewTask, ClaimHolder } from './task.js';
export type { TaskStore, PoolStore, PoolRecord, PendingQuery, Awaitable } from './task-store.js';
export { MemoryStore } from './memory-store.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { SqliteStore } from './sqlite-store.js';
export type { SqliteStoreOptions } from './sqlite-store.js';
export { PostgresStore } from './postgres-store.js';
export type { PostgresStoreOptions, PostgresPoolLike } from './postgres-store.js';
export { LeaderLock } from './leader-lock.js';
export type { LeaderLockOptions } from './leader-lock.js';
export { StaleClaimError, StoreConnectionError, STORE_CONNECTION_CODE } from './errors.js';
export { MissingDependencyError, MISSING_DEPENDENCY_CODE } from './optional-deps.js';
export { PoolManager } from './pool-manager.js';
export type { Pool, PoolManagerOptions, CreatePoolInput, AdmissionPolicy, AdmissionContext, TrustProvider } from './pool-manager.js';
export { NegotiationProtocol } from './negotiation.js';
export type { NegotiationSession, NegotiationState, Proposal, NegotiationOptions } from './negotiation.js';
export { Consensus } from './consensus.js';
export type { Votes } from './consensus.js';
export { BiddingProtocol, AUCTION_TYPES } from './bidding.js';
export type { AuctionType, BiddingOptions, AuctionResult, AuctionStatus, Bid } from './bidding.js';
export { DelegationProtocol } from './delegation.js';
export type { Delegation, DelegationType, DelegateOptions, DelegationOptions } from './delegation.js';
