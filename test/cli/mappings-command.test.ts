/**
 * `orderbridge mappings …` as a customer's CI runs it: the real entry point, files only, with an
 * environment that would stop the server (a bad PORT, no Redis), which these commands never read.
 */
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = new URL('../../', import.meta.url).pathname
const bin = path.join(root, 'bin/orderbridge.mjs')
const node = path.join(root, 'node_modules/.bin/node')
const work = mkdtempSync(path.join(tmpdir(), 'orderbridge-mappings-'))
const env = { ...process.env, PORT: 'eighty', REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'postgres://127.0.0.1:1/none' }

afterAll(() => rmSync(work, { recursive: true, force: true }))

function run(args: string[], cwd = root): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(node, [bin, 'mappings', ...args], { env, cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

const shippedFiles = readdirSync(path.join(root, 'mappings')).filter((f) => /\.ya?ml$/.test(f)).sort()
const fxiaokeExamples = 'mappings/examples/fxiaoke.to-canonical.order'

describe('orderbridge mappings validate', () => {
  it('says ok for every shipped mapping file', async () => {
    const result = await run(['validate'])
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(result.stdout.trim().split('\n')).toEqual(shippedFiles.map((f) => `ok mappings/${f}`))
  })

  it('names the file and every field path that is wrong, including JSONata that does not compile', async () => {
    const project = path.join(work, 'broken')
    const dir = path.join(project, 'mappings')
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      path.join(dir, 'crm.to-canonical.order.yaml'),
      [
        'id: crm.to-canonical.order',
        'fields:',
        '  - { to: externalId, from: id }',
        '  - { to: "not a path", from: x }',
        '  - { to: currency, from: cur, type: money }',
      ].join('\n'),
    )
    writeFileSync(path.join(dir, 'bad-expression.yaml'), 'id: bad-expression\nfields:\n  - { to: total, expression: "$sum(" }\n')
    writeFileSync(path.join(dir, 'good.json'), JSON.stringify({ id: 'good', fields: [{ to: 'a', from: 'b' }] }))

    const result = await run(['validate'], project)
    expect(result.code).toBe(1)
    expect(result.stdout).toContain('mappings/bad-expression.yaml:\n  fields[0].expression: invalid JSONata')
    expect(result.stdout).toContain('mappings/crm.to-canonical.order.yaml:\n  fields[1].to: a dot path such as account.id or items[0].qty\n  fields[2].type:')
    expect(result.stdout).toContain('ok mappings/good.json')

    const some = await run(['validate', path.join(dir, 'good.json'), 'missing.yaml'], project)
    expect(some).toMatchObject({ code: 1, stdout: 'ok mappings/good.json\nmissing.yaml:\n  (root): no such file\n' })
  })
})

describe('orderbridge mappings preview', () => {
  it('prints the mapped document', async () => {
    const result = await run(['preview', 'fxiaoke.to-canonical.order', `${fxiaokeExamples}/sales-order.input.json`, '--lookups', `${fxiaokeExamples}/lookups.json`])
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(result.stdout)).toEqual(JSON.parse(readFileSync(path.join(root, fxiaokeExamples, 'sales-order.expected.json'), 'utf8')))
  })

  it('prints each error with its field, value and source path, and fails', async () => {
    const result = await run(['preview', 'fxiaoke.to-canonical.order', `${fxiaokeExamples}/float-price.input.json`, '--lookups', `${fxiaokeExamples}/lookups.json`])
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'lines[1].unitPrice: 180.8 is a binary float; send decimals as strings (from details.SalesOrderProductObj[1].sales_price)\n',
    })
  })

  it('refuses an unknown mapping id, naming the known ones', async () => {
    const result = await run(['preview', 'no.such.mapping', `${fxiaokeExamples}/sales-order.input.json`])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^orderbridge: no mapping with id "no.such.mapping"; known: .*fxiaoke.to-canonical.order/)
  })
})

describe('orderbridge mappings test', () => {
  it('passes every shipped golden example', async () => {
    const result = await run(['test'])
    const inputs = readdirSync(path.join(root, 'mappings/examples'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.input.json'))
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(result.stdout).toContain('PASS fxiaoke.to-canonical.order/float-price\n')
    expect(result.stdout.trim().split('\n').at(-1)).toBe(`${inputs.length} passed, 0 failed`)
  })

  it('shows what differs when an example fails, and fails', async () => {
    const dir = path.join(work, 'failing')
    mkdirSync(path.join(dir, 'mappings'), { recursive: true })
    cpSync(path.join(root, 'mappings/demo-crm.to-canonical.order.yaml'), path.join(dir, 'mappings/demo-crm.to-canonical.order.yaml'))
    const examples = path.join(dir, 'golden/demo-crm.to-canonical.order')
    cpSync(path.join(root, 'mappings/examples/demo-crm.to-canonical.order'), examples, { recursive: true })
    const expected = JSON.parse(readFileSync(path.join(examples, 'sample.expected.json'), 'utf8'))
    expected.lines[1].unitPrice = '119.00'
    delete expected.owner
    writeFileSync(path.join(examples, 'sample.expected.json'), JSON.stringify(expected))
    mkdirSync(path.join(dir, 'golden/renamed.mapping'))

    const result = await run(['test', '--dir', 'golden'], dir)
    expect(result).toMatchObject({ code: 1, stderr: '' })
    expect(result.stdout).toBe(
      [
        'FAIL demo-crm.to-canonical.order/sample',
        '  lines[1].unitPrice: expected "119.00", got "119.02"',
        '  owner: not expected, got "rep-2"',
        'FAIL renamed.mapping',
        '  no mapping has this id',
        '0 passed, 2 failed',
        '',
      ].join('\n'),
    )
  })
})
