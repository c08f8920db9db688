/**
 * The V8 flags orderbridge's processes run with: `npm start`, the Docker image's entry point, and
 * the processes the chaos test and the benchmarks spawn (test/config/docker-config.test.ts checks
 * that package.json and the Dockerfile say the same). Flags cannot be set from inside a running
 * process, so a deployment that starts `bin/orderbridge.mjs` some other way should pass them too.
 *
 * Both generations are sized here rather than from the machine's memory, which on a large machine
 * lets a process grow far past what it holds:
 * - the young generation is capped: V8 grows it to 128 MB under sustained allocation (a
 *   reconciliation run, a burst of webhooks), which was most of a process's peak memory;
 * - the heap is capped at 1 GB, about 25 times what a process holds live. V8 scales how far the old
 *   generation may grow past what survived the last full GC with the heap limit: with its default
 *   limit on a 24 GB machine (4 GB) it collected again at about 4.2 times that (~160 MB), with
 *   1 GB at about 1.8 times (~65 MB). A long reconciliation run promotes a little of every page,
 *   so uncapped its peak grew with its length (about 250 MB at 100,000 orders, 295 MB at
 *   200,000); capped, it peaks at ~190 MB whatever its length, at the same speed, for about a dozen
 *   more mark-compacts of 10–27 ms per 200,000 orders (docs/BENCHMARKS.md, `npm run bench:reconcile`).
 */
export const nodeFlags: readonly string[] = ['--max-semi-space-size=8', '--max-old-space-size=1024']
