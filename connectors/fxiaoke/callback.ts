/**
 * Fxiaoke's signed push format, as the open platform sends it and as a CRM function can build it:
 * a JSON body `{nonce, timeStamp, content, sig}` where `sig` is the lowercase hex SHA-1 of the four
 * strings [token, timeStamp, nonce, content] sorted and concatenated, and `content` is either
 * AES-encrypted (when the connection has an EncodingAESKey) or plain JSON.
 *
 * The encryption follows the official open-platform demo (github.com/openfxiaoke/demo, SigUtils /
 * PKCS7Encoder): AES-256-CBC without cipher padding, key = base64(EncodingAESKey + "="), IV = the
 * key's first 16 bytes; the plaintext is 16 random bytes, the message length (4 bytes, big-endian),
 * the message, then the app id, padded PKCS#7-style to a multiple of 32 bytes.
 *
 * No I/O here; nothing is logged.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'

/** The signature: SHA-1 over the four strings sorted (by UTF-16 code unit, as Java's Arrays.sort). */
export function callbackSignature(token: string, timeStamp: string, nonce: string, content: string): string {
  const parts = [token, timeStamp, nonce, content].sort()
  return createHash('sha1').update(parts.join(''), 'utf8').digest('hex')
}

/** Constant-time comparison of two hex signatures. */
export function signaturesMatch(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'utf8')
  const b = Buffer.from(given.toLowerCase(), 'utf8')
  return a.length === b.length && timingSafeEqual(a, b)
}

const blockSize = 32

function aesKey(encodingAesKey: string): Buffer {
  const key = Buffer.from(`${encodingAesKey}=`, 'base64')
  if (key.length !== 32) throw new Error('the EncodingAESKey must decode to 32 bytes')
  return key
}

export class UndecryptableContent extends Error {}

/** Decrypts a push's `content`; throws UndecryptableContent when it is not what the key encrypted. */
export function decryptContent(content: string, encodingAesKey: string): string {
  const key = aesKey(encodingAesKey)
  let plain: Buffer
  try {
    const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16))
    decipher.setAutoPadding(false)
    plain = Buffer.concat([decipher.update(Buffer.from(content, 'base64')), decipher.final()])
  } catch (err) {
    throw new UndecryptableContent('content is not AES-256-CBC ciphertext of this key', { cause: err })
  }
  const last = plain.at(-1) ?? 0
  const pad = last >= 1 && last <= blockSize ? last : 0
  const body = plain.subarray(0, plain.length - pad)
  if (body.length < 20) throw new UndecryptableContent('decrypted content is too short')
  const length = body.readUInt32BE(16)
  if (20 + length > body.length) throw new UndecryptableContent('decrypted content has a wrong length (another key?)')
  return body.subarray(20, 20 + length).toString('utf8')
}

/** The reverse of decryptContent, for the simulator's pusher and tests. */
export function encryptContent(message: string, encodingAesKey: string, appId = '', random: Buffer = randomBytes(16)): string {
  const key = aesKey(encodingAesKey)
  const text = Buffer.from(message, 'utf8')
  const length = Buffer.alloc(4)
  length.writeUInt32BE(text.length)
  const unpadded = Buffer.concat([random, length, text, Buffer.from(appId, 'utf8')])
  const pad = blockSize - (unpadded.length % blockSize)
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16))
  cipher.setAutoPadding(false)
  return Buffer.concat([cipher.update(Buffer.concat([unpadded, Buffer.alloc(pad, pad)])), cipher.final()]).toString('base64')
}

/** The push envelope. `timeStamp` is epoch milliseconds, sent as a string (a number is taken too). */
export const callbackBodySchema = z.object({
  nonce: z.string().min(1),
  timeStamp: z.union([z.string().regex(/^\d+$/, 'must be epoch milliseconds'), z.number().int().nonnegative().transform(String)]),
  content: z.string().min(1),
  sig: z.string().regex(/^[0-9a-fA-F]{40}$/, 'must be 40 hex digits'),
})
export type CallbackBody = z.infer<typeof callbackBodySchema>

/** Builds a signed push body: what the pusher (and a CRM function) sends. */
export function signCallback(options: { token: string; content: string; timeStamp?: string; nonce?: string; encodingAesKey?: string; appId?: string }): CallbackBody {
  const timeStamp = options.timeStamp ?? String(Date.now())
  const nonce = options.nonce ?? randomBytes(8).toString('hex')
  const content = options.encodingAesKey ? encryptContent(options.content, options.encodingAesKey, options.appId) : options.content
  return { nonce, timeStamp, content, sig: callbackSignature(options.token, timeStamp, nonce, content) }
}
