/** Piscina entry of the job agent threads. Loaded by path; the logic lives in job-agent.ts. */
import { runJobAgentTask } from './job-agent.js';

export default runJobAgentTask;
