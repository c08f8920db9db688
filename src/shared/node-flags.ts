/**
 * The V8 flags orderbridge's processes run with: `npm start`, the Docker image's entry point, and
 * the processes the chaos test and the benchmarks spawn (test/config/docker-config.test.ts checks
 * that package.json and the Dockerfile say the same). Flags cannot be set from inside a running
 * process, so a deployment that starts `bin/orderbridge.mjs` some other way should pass them too.
 *
 * The young generation is capped: on a large machine V8 grows it to 128 MB under sustained
 * allocation (a reconciliation run, a burst of webhooks), which was most of a process's peak memory.
 * 8 MB semi-spaces keep a 100,000-order reconciliation under 300 MB at the same speed
 * (docs/BENCHMARKS.md, `npm run bench:reconcile`).
 */
export const nodeFlags: readonly string[] = ['--max-semi-space-size=8']
