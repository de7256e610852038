// Before and after the integration tests: remove labs that an earlier, interrupted run left.
import { cleanupTestLabs } from "./helpers.ts";

export async function setup(): Promise<void> {
  await cleanupTestLabs();
}

export async function teardown(): Promise<void> {
  await cleanupTestLabs();
}
