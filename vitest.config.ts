import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "unit", include: ["test/wire/**/*.test.ts", "test/io/**/*.test.ts", "test/switch/**/*.test.ts", "test/control/**/*.test.ts", "test/cli/**/*.test.ts"] },
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
