import { defineConfig } from "vitest/config";

/** The unit project: no namespaces, no devices, no processes. `npm run mutate` runs these alone. */
export const unitTests = ["test/wire/**/*.test.ts", "test/cluster/**/*.test.ts", "test/io/**/*.test.ts", "test/switch/**/*.test.ts", "test/tunnel/**/*.test.ts", "test/node/**/*.test.ts", "test/lab/**/*.test.ts", "test/bench/**/*.test.ts", "test/cli/**/*.test.ts", "test/cni/**/*.test.ts"];

export default defineConfig({
  test: {
    projects: [
      {
        // The randomized tests make thousands of trials: on a busy 2-core machine some take over 5 s.
        // The architecture test reads src/ as it is on disk: not under Stryker, whose instrumented copies are longer.
        test: { name: "unit", include: [...unitTests, "test/architecture.test.ts"], testTimeout: 30_000 },
      },
      {
        // Real namespaces, devices and processes: one file at a time, generous timeouts.
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/integration/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
