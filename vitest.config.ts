import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: [
      "tests/**/*.test.ts",
      "core/**/*.test.ts",
      "actors/**/*.test.ts",
      "plugins/**/*.test.ts",
      "plugins/**/*.test.mjs",
      "schemas/**/*.test.ts",
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: run files in a couple of forks; the fault tests start their own servers.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Logs of passing tests are noise; a failing test's logs are shown with it.
    silent: "passed-only",
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-results.json" },
  },
})
