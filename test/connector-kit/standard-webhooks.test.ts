import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { signStandardWebhook, verifyStandardWebhook } from '../../src/connector-kit/index.ts'

// The official vectors from the Standard Webhooks libraries (see shared/fixtures/INDEX.md).
const fixtures = JSON.parse(readFileSync(new URL('../../../shared/fixtures/standard-webhooks-test-vectors.json', import.meta.url), 'utf8'))
const vectors: { secret: string; 'webhook-id': string; 'webhook-timestamp': string; payload: string; expected_signature: string }[] = fixtures.vectors

describe('Standard Webhooks signatures', () => {
  it.each(vectors.map((v) => [v['webhook-id'], v]))('signs the published vector %s', (_id, v) => {
    const headers = signStandardWebhook(v.secret, v['webhook-id'], Number(v['webhook-timestamp']), v.payload)
    expect(headers['webhook-signature']).toBe(v.expected_signature)
  })

  it.each(vectors.map((v) => [v['webhook-id'], v]))('verifies the published vector %s inside its window', (_id, v) => {
    const headers = { 'webhook-id': v['webhook-id'], 'webhook-timestamp': v['webhook-timestamp'], 'webhook-signature': v.expected_signature }
    const now = Number(v['webhook-timestamp'])
    expect(verifyStandardWebhook(v.secret, headers, Buffer.from(v.payload), { nowSeconds: now })).toEqual({ ok: true })
    expect(verifyStandardWebhook(v.secret, headers, Buffer.from(v.payload), { nowSeconds: now + 301 }).ok).toBe(false)
    expect(verifyStandardWebhook(v.secret, headers, Buffer.from(v.payload), { nowSeconds: now - 301 }).ok).toBe(false)
    expect(verifyStandardWebhook(v.secret, headers, Buffer.from(v.payload + ' '), { nowSeconds: now }).ok).toBe(false)
  })

  const v = vectors[0]!
  const base = { 'webhook-id': v['webhook-id'], 'webhook-timestamp': v['webhook-timestamp'] }
  const now = Number(v['webhook-timestamp'])

  it.each(fixtures.negative_cases_from_tests.invalid_signature_values_that_must_fail as string[])('rejects the invalid signature %s', (signature) => {
    expect(verifyStandardWebhook(v.secret, { ...base, 'webhook-signature': signature }, Buffer.from(v.payload), { nowSeconds: now }).ok).toBe(false)
  })

  it('accepts a list where one entry is valid, skipping decoys and unknown versions', () => {
    const decoy = 'Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc='
    const signature = `v1,${decoy} v2,${decoy} ${v.expected_signature} v1,${decoy}`
    expect(verifyStandardWebhook(v.secret, { ...base, 'webhook-signature': signature }, Buffer.from(v.payload), { nowSeconds: now })).toEqual({ ok: true })
  })

  it('says which header is missing or malformed', () => {
    expect(verifyStandardWebhook(v.secret, { 'webhook-id': 'x' }, Buffer.from('{}'))).toEqual({ ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' })
    expect(verifyStandardWebhook(v.secret, { ...base, 'webhook-timestamp': '2021-02-25', 'webhook-signature': v.expected_signature }, Buffer.from(v.payload)).ok).toBe(false)
  })

  it('refuses an empty secret', () => {
    expect(() => signStandardWebhook('whsec_', 'id', 1, 'x')).toThrow('webhook secret is empty')
  })
})
