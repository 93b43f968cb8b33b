/**
 * The actor runtime: supervised, passivating actors keyed by conversation or channel account.
 * See `ActorSupervisor.ts`.
 */
export {
  type ActorBehaviour,
  ActorDefect,
  type ActorError,
  type ActorStats,
  type ActorSupervisor,
  type ActorSupervisorOptions,
  defaultRestart,
  layer,
  MailboxFull,
  make,
  SupervisorClosed,
} from "./ActorSupervisor.ts"
