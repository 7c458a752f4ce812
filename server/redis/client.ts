import type { Cluster, Redis } from 'ioredis';

/** A Redis connection: one server, or a Redis Cluster (each pool's keys share a hash tag, so one slot). */
export type RedisClient = Redis | Cluster;
