// A seeded PRNG for tests and the benchmark, so a failure or a run is reproducible from its seed:
// the product's own (src/util/prng.ts), the one REPLY_SEED seeds.
export { prng } from '../../src/util/prng.ts';
