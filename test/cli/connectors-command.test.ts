/**
 * `orderbridge connectors new <id>`: refusals in process, and one real scaffold through the entry
 * point into a temporary project that is then typechecked with tsc and tested with vitest, as a
 * developer would right after scaffolding.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runConnectorsCommand, scaffoldConnector, ScaffoldRefused } from '../../src/cli/connectors-command.ts'

const root = new URL('../../', import.meta.url).pathname
const bin = path.join(root, 'bin/orderbridge.mjs')
const node = path.join(root, 'node_modules/.bin/node')
const work = mkdtempSync(path.join(tmpdir(), 'orderbridge-connectors-'))
// Children must not think they run inside this vitest worker; and they never need the server's environment.
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'NODE_OPTIONS')),
  PORT: 'eighty',
  REDIS_URL: 'redis://127.0.0.1:1',
  DATABASE_URL: 'postgres://127.0.0.1:1/none',
  NO_COLOR: '1',
  FORCE_COLOR: '0',
}

afterAll(() => rmSync(work, { recursive: true, force: true }))

function run(command: string, args: string[], cwd = root): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

async function inProcess(args: string[], cwd = work) {
  const out: string[] = []
  const err: string[] = []
  const code = await runConnectorsCommand(args, { out: (line) => out.push(line), err: (line) => err.push(line) }, cwd)
  return { code, out: out.join('\n'), err: err.join('\n') }
}

describe('orderbridge connectors new', () => {
  it.each(['Acme', 'acme_erp', 'acme--erp', '_acme', 'acme-', '1acme', 'ac me', '../evil', 'a'.repeat(41)])('refuses the id %j and writes nothing', async (id) => {
    const dir = path.join(work, 'refused')
    const result = await inProcess(['new', id, '--dir', dir])
    expect(result.code).toBe(1)
    expect(result.err).toContain('is not a connector id: use lower-case letters, digits and single hyphens')
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([])
  })

  it('refuses an existing folder and leaves it as it was', async () => {
    const dir = path.join(work, 'existing')
    mkdirSync(path.join(dir, 'acme-erp'), { recursive: true })
    writeFileSync(path.join(dir, 'acme-erp', 'index.ts'), '// mine\n')
    const result = await inProcess(['new', 'acme-erp', '--dir', dir])
    expect(result.code).toBe(1)
    expect(result.err).toContain('acme-erp already exists; choose another id or remove that folder first')
    expect(readdirSync(path.join(dir, 'acme-erp'))).toEqual(['index.ts'])
    expect(readFileSync(path.join(dir, 'acme-erp', 'index.ts'), 'utf8')).toBe('// mine\n')
  })

  it('explains its usage when the id is missing, doubled or the subcommand unknown', async () => {
    for (const args of [['new'], ['new', 'a', 'b'], ['old', 'a'], [], ['new', 'a', '--color']]) {
      const result = await inProcess(args)
      expect(result.code).toBe(1)
      expect(result.err).toContain('usage:\n  orderbridge connectors new <id>')
    }
  })

  it('is dispatched by the orderbridge entry point, before the environment is read', async () => {
    const result = await run(node, [bin, 'connectors', 'new', 'Not-An-Id', '--dir', path.join(work, 'bin')])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('orderbridge: "Not-An-Id" is not a connector id')
    expect(existsSync(path.join(work, 'bin', 'Not-An-Id'))).toBe(false)
  })

  it('refuses a display name that could break the generated code', () => {
    expect(() => scaffoldConnector({ id: 'quoted', dir: path.join(work, 'names'), displayName: "Acme's */ ERP" })).toThrow(ScaffoldRefused)
    expect(existsSync(path.join(work, 'names', 'quoted'))).toBe(false)
  })

  it('scaffolds a connector that typechecks and passes the conformance suite as it is', async () => {
    // A project beside the repository: its own package.json and tsconfig, the repository's node_modules.
    const project = path.join(work, 'project')
    mkdirSync(project)
    symlinkSync(path.join(root, 'node_modules'), path.join(project, 'node_modules'), 'dir')
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ type: 'module', private: true }))
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ extends: path.join(root, 'tsconfig.json'), include: ['connectors'] }))

    const scaffold = await inProcess(['new', 'acme-erp', '--dir', 'connectors', '--name', 'Acme ERP'], project)
    expect(scaffold).toMatchObject({ code: 0, err: '' })
    expect(scaffold.out).toContain('created connectors/acme-erp/')
    const folder = path.join(project, 'connectors', 'acme-erp')
    expect(readdirSync(folder).sort()).toEqual(['README.md', 'acme-erp.test.ts', 'client.ts', 'index.ts', 'simulator.ts'])

    const index = readFileSync(path.join(folder, 'index.ts'), 'utf8')
    expect(index).toContain('TEMPLATE, scaffolded by `orderbridge connectors new acme-erp`')
    expect(index).toContain("throw new SyncFailure('config', 'not implemented yet'")
    expect(index).toContain("displayName: 'Acme ERP'")
    const readme = readFileSync(path.join(folder, 'README.md'), 'utf8')
    for (const section of ['## API version', '## Auth', '## Rate limits', '## Idempotency']) expect(readme).toContain(section)
    expect(readFileSync(path.join(folder, 'acme-erp.test.ts'), 'utf8')).toContain('describeConnectorConformance(')

    const tsc = await run(node, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', project], project)
    expect(tsc.stdout + tsc.stderr).toBe('')
    expect(tsc.code).toBe(0)

    const vitest = await run(node, [path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--root', project, 'connectors/acme-erp/acme-erp.test.ts'], project)
    expect(vitest.code, vitest.stdout + vitest.stderr).toBe(0)
    expect(vitest.stdout.replace(/\u001b\[[0-9;]*m/g, '')).toMatch(/Tests\s+\d+ passed \| \d+ skipped/)

    // The stub says what it is instead of pretending to work.
    const { acmeErp } = (await import(path.join(folder, 'index.ts'))) as { acmeErp: { salesOrders: { upsert: { run(...args: unknown[]): Promise<unknown> } } } }
    await expect(acmeErp.salesOrders.upsert.run({}, {}, undefined)).rejects.toMatchObject({ kind: 'config', message: 'not implemented yet' })
  }, 180_000)
})
