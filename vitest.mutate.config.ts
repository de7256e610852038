import { defineConfig } from "vitest/config";
import { unitTests } from "./vitest.config.ts";

/**
 * The unit tests alone, as one flat project: what Stryker runs against each mutant (`npm run
 * mutate`). Instrumented code runs several times slower and every mutant runs its tests again,
 * so randomized tests make a tenth of their trials (test/support/random.ts `trials`) and get
 * more time.
 */
export default defineConfig({ test: { include: unitTests, testTimeout: 60_000, env: { TAPNET_TRIALS_SCALE: "0.1" } } });
