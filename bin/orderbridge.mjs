#!/usr/bin/env node
// The one entry point for every mode and the CLI. orderbridge runs its TypeScript sources directly
// (Node 24 strips types), so it needs Node 24; `npm install` brings it into node_modules/.bin.
const [major] = process.versions.node.split('.').map(Number)
if (major < 24) {
  console.error(`orderbridge needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx orderbridge) so the Node 24 that npm installed is used.`)
  process.exit(1)
}
await import('../src/cli.ts')
