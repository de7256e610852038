import { defineConfig } from "vitest/config";

/**
 * `npm run test:vm`: the VM labs' provisioning on machines that really boot (test/vm/). Not part
 * of `npm test`: the first run debootstraps a Debian 12 root (cached in /var/cache/tapnet-vm),
 * and each run boots two machines with systemd. Root only; one file at a time.
 */
export default defineConfig({
  test: {
    name: "vm",
    include: ["test/vm/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 900_000,
  },
});
