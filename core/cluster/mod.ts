/**
 * Several nodes on one namespace: which node leads (holds the NATS KV lease) and runs the
 * single-owner parts. See `Leadership.ts`; the bucket's wire calls are internal (`LeaseBucket.ts`).
 */
export {
  bucketName,
  defaultNodeId,
  leaderOnly,
  Leadership,
  type LeadershipShape,
  lease,
  LEASE_KEY,
  LeaseConflict,
  leaseLayer,
  type LeaseOptions,
  LeaseUnavailable,
  LeaseValue,
  prometheus,
  single,
} from "./Leadership.ts"
