/**
 * The ops queue dashboard (Bull Board at /admin/queues) in a real headless Chromium: the browser
 * is asked for credentials, an ops key opens the page with its static assets, and the page lists
 * the queues once the UI has rendered. A viewer key is refused.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

describe('the ops queue dashboard at /admin/queues', { timeout: 60_000 }, () => {
  let stack: TestStack
  let browser: Browser
  let shots: string

  beforeAll(async () => {
    stack = await startTestStack('pglite')
    shots = mkdtempSync(path.join(tmpdir(), 'orderbridge-dashboard-'))
    // One order, so the queues exist in Redis and the dashboard has something to show.
    const delivery = await stack.crm.send('order.created', sampleOrder(1))
    expect(delivery.status).toBe(202)
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await stack?.close()
    if (shots) rmSync(shots, { recursive: true, force: true })
  })

  async function createKey(role: 'ops' | 'viewer'): Promise<string> {
    const created = await stack.api<{ key: string }>('/api/v1/keys', { method: 'POST', body: { name: `dashboard ${role}`, role } })
    expect(created.status).toBe(201)
    return created.body.key
  }

  it('asks a browser without credentials for HTTP Basic', async () => {
    const response = await fetch(`${stack.url}/admin/queues`)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="orderbridge ops"/)
  })

  it('renders the queues for an ops key, with every asset of its own served', async () => {
    const opsKey = await createKey('ops')
    const context = await browser.newContext({ httpCredentials: { username: 'ops', password: opsKey }, viewport: { width: 1280, height: 800 } })
    try {
      const page = await context.newPage()
      const origin = new URL(stack.url).origin
      // Only our own server's answers count: the UI also asks Google Fonts, which a test box may not reach.
      const failures: string[] = []
      page.on('requestfailed', (request) => {
        if (request.url().startsWith(origin)) failures.push(`${request.url()}: ${request.failure()?.errorText}`)
      })
      page.on('response', (response) => {
        if (response.url().startsWith(origin) && response.status() >= 400) failures.push(`${response.url()}: HTTP ${response.status()}`)
      })
      const pageErrors: string[] = []
      page.on('pageerror', (err) => pageErrors.push(err.message))

      const response = await page.goto(`${stack.url}/admin/queues`, { waitUntil: 'domcontentloaded' })
      expect(response?.status()).toBe(200)
      // The queue names come from the board's JSON API, so seeing them means the app booted and
      // its authenticated API calls went through.
      await page.getByText('sync-demo-erp', { exact: true }).first().waitFor({ state: 'visible', timeout: 30_000 })
      await page.getByText('ingest', { exact: true }).first().waitFor({ state: 'visible', timeout: 30_000 })
      await page.waitForLoadState('networkidle').catch(() => {})

      const shot = path.join(shots, 'queues.png')
      await page.screenshot({ path: shot, fullPage: true })
      expect(statSync(shot).size).toBeGreaterThan(1_000)
      expect(readFileSync(shot).subarray(0, 8).equals(pngSignature)).toBe(true)
      if (process.env.KEEP_DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.KEEP_DASHBOARD_SCREENSHOT, fullPage: true })

      expect(failures).toEqual([])
      expect(pageErrors).toEqual([])
    } finally {
      await context.close()
    }
  })

  it('refuses a viewer key with 403', async () => {
    const viewerKey = await createKey('viewer')
    const context = await browser.newContext({ httpCredentials: { username: 'viewer', password: viewerKey } })
    try {
      const page = await context.newPage()
      const response = await page.goto(`${stack.url}/admin/queues`)
      expect(response?.status()).toBe(403)
      expect(await page.content()).toContain('forbidden')
    } finally {
      await context.close()
    }
  })
})
