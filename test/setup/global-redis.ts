// Placeholder until the Redis integration harness lands: no Redis-backed tests exist yet.
export default async function setup(): Promise<void> {}
