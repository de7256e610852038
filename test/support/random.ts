/** Seeded randomness for the randomized tests, so that a failing run can be replayed. */

/** mulberry32: a small seeded PRNG returning numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * How many trials a randomized test makes: `n`, or a share of it under mutation testing
 * (`npm run mutate` sets TAPNET_TRIALS_SCALE), where every mutant runs the test again and the
 * instrumented code is several times slower. At least `min`, so a scaled test still covers its cases.
 */
export function trials(n: number, min = 20): number {
  const scale = Number(process.env.TAPNET_TRIALS_SCALE ?? "1");
  if (!(scale > 0 && scale < 1)) return n;
  return Math.min(n, Math.max(min, Math.ceil(n * scale)));
}
